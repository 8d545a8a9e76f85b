"""The breaker over a simulated day: trip at the cap, cards, restart, reset at midnight."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.breaker.conftest import GATEWAY_JSON, write_toml
from watcher.alerts.outbox import Outbox
from watcher.breaker.config import BreakerConfig, load_config
from watcher.breaker.config_writer import ConfigWriter, sha256
from watcher.breaker.cut import cut_provider
from watcher.breaker.ledger import Trip, with_trip
from watcher.breaker.service import Breaker, redact_config_text
from watcher.breaker.store import LedgerStore
from watcher.gateway.chains import parse_gateway_config
from watcher.parse.lines import parse_line

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


def served(candidate: str) -> str:
    return ("[model-fallback/decision] model fallback decision: decision=candidate_succeeded "
            f"requested=ollama/kimi-k2.5:cloud candidate={candidate} reason=unknown next=none")


class Harness:
    def __init__(self, tmp_path: Path, gateway: Path, **writer_kw: object) -> None:
        self.config: BreakerConfig = load_config(write_toml(tmp_path, gateway))
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        self.gateway = gateway
        self.outbox = Outbox(self.config.state_dir / "outbox.sqlite3")
        self.writer_kw = writer_kw
        self.seq = 0
        self.lines: list[str] = []

    def breaker(self, now: float) -> Breaker:
        writer = ConfigWriter(self.gateway, backups_keep=3, cas_retries=2, clock=lambda: now,
                              **self.writer_kw)  # type: ignore[arg-type]
        return Breaker(self.config, now=now, writer=writer,
                       store=LedgerStore(self.config.state_dir), outbox=self.outbox,
                       echo=self.lines.append)

    def feed(self, breaker: Breaker, lines: list[str], ts: float) -> str:
        items = []
        for line in lines:
            self.seq += 1
            items.append((f"pos-{self.seq}", parse_line(line, ts=ts), ts))
        breaker.account_records(items, ts)
        breaker.mark_position(f"pos-{self.seq}", ts)
        return breaker.check(ts)

    def cards(self) -> list[dict[str, object]]:
        return [c.alert.to_json() for c in self.outbox.cards()]


def test_breaker_trips_at_the_cap_and_resets_at_local_midnight(
    tmp_path: Path, gateway: Path
) -> None:
    h = Harness(tmp_path, gateway)
    b = h.breaker(at("2026-05-20T09:00:00"))
    said = h.feed(b, [served("openai/gpt-5.5")] * 3, at("2026-05-20T09:10:00"))
    assert said.startswith("nothing to do: 0 provider(s) cut off")  # 0.75 of 1.00
    assert gateway.read_text() == GATEWAY_JSON
    said = h.feed(b, [served("openai/gpt-5.5")], at("2026-05-20T09:20:00"))
    assert said == ("cut openai off for 2026-05-20 (spent 1.00 USD of a 1.00 USD daily cap): "
                    "2 fallback(s) removed, 2 primary(ies) promoted, 5 agent(s) affected")
    chains = parse_gateway_config(gateway.read_text()).chains
    assert not any(ref.startswith("openai/") for chain in chains.values() for ref in chain)
    [card] = h.cards()
    assert card["type"] == "BREAKER_TRIPPED" and card["from_model"] == "openai"
    assert card["agents"] == ["bare", "legacy", "local", "main", "ops"]
    assert card["extra"]["reset_at"] == "2026-05-21T00:00:00+02:00"  # type: ignore[index]

    # More paid traffic the same day changes nothing: it is already cut off.
    assert h.feed(b, [served("openai/gpt-5.5")], at("2026-05-20T23:59:59")).startswith(
        "nothing to do: 1 provider(s) cut off (openai)")
    said = b.check(at("2026-05-21T00:00:00"))
    assert said == "restored openai for 4 place(s)"
    assert gateway.read_text() == GATEWAY_JSON  # byte for byte
    assert [c["type"] for c in h.cards()] == ["BREAKER_TRIPPED", "BREAKER_RESET"]
    assert LedgerStore(h.config.state_dir).load().trips == ()  # type: ignore[union-attr]


def test_a_restart_mid_day_keeps_the_ledger(tmp_path: Path, gateway: Path) -> None:
    h = Harness(tmp_path, gateway)
    b = h.breaker(at("2026-05-20T09:00:00"))
    h.feed(b, [served("openai/gpt-5.5")] * 3, at("2026-05-20T09:10:00"))
    # The process restarts: a new Breaker on the same state directory.
    b2 = h.breaker(at("2026-05-20T12:00:00"))
    assert b2.ledger.spend_of("openai").calls_ok == 3
    said = h.feed(b2, [served("openai/gpt-5.5")], at("2026-05-20T12:00:01"))
    assert said.startswith("cut openai")
    # And a restart after the trip still knows what to restore at midnight.
    b3 = h.breaker(at("2026-05-20T18:00:00"))
    assert b3.check(at("2026-05-21T00:00:01")) == "restored openai for 4 place(s)"
    assert gateway.read_text() == GATEWAY_JSON


def test_an_operator_change_before_the_reset_is_left_alone_and_announced(
    tmp_path: Path, gateway: Path
) -> None:
    h = Harness(tmp_path, gateway)
    b = h.breaker(at("2026-05-20T09:00:00"))
    h.feed(b, [served("openai/gpt-5.5")] * 4, at("2026-05-20T09:10:00"))
    text = gateway.read_text().replace('"openrouter/openrouter/owl-alpha",\n', "", 1)
    gateway.write_text(text)  # the operator drops openrouter from ops by hand
    said = b.check(at("2026-05-21T00:00:00"))
    assert said == ("restored openai for 3 place(s), left 1 changed by the operator alone (ops)")
    chains = parse_gateway_config(gateway.read_text()).chains
    assert chains["ops"] == ("ollama/qwen3-coder:480b-cloud", "ollama/qwen3:8b")
    assert chains["main"][0] == "openai/gpt-5.5"
    reset = h.cards()[-1]
    assert reset["type"] == "BREAKER_RESET"
    assert reset["extra"]["left_alone"] == "ops"  # type: ignore[index]
    assert "left as the operator set it" in str(reset["detail"])


def test_a_trip_blocked_by_concurrent_edits_is_announced_and_retried(
    tmp_path: Path, gateway: Path
) -> None:
    busy = [True]
    port = [18789]

    def operator_saves() -> None:  # an operator saving the file again and again
        if busy[0]:
            text = gateway.read_text().replace(f'"port": {port[0]}', f'"port": {port[0] + 1}')
            port[0] += 1
            gateway.write_text(text)

    h = Harness(tmp_path, gateway, before_replace=operator_saves)
    b = h.breaker(at("2026-05-20T09:00:00"))
    said = h.feed(b, [served("openai/gpt-5.5")] * 4, at("2026-05-20T09:10:00"))
    assert "was not changed" in said and "gave up without writing" in said
    assert h.cards()[0]["extra"] == {"provider": "openai", "outcome": "not written"}
    busy[0] = False
    assert b.check(at("2026-05-20T09:11:00")).startswith("cut openai off")
    assert [c["type"] for c in h.cards()] == ["BREAKER_TRIPPED", "BREAKER_TRIPPED"]


def test_a_trip_written_just_before_a_crash_is_recovered_and_announced(
    tmp_path: Path, gateway: Path
) -> None:
    h = Harness(tmp_path, gateway)
    edited, cut = cut_provider(GATEWAY_JSON, "openai")
    store = LedgerStore(h.config.state_dir)
    b = h.breaker(at("2026-05-20T09:00:00"))
    # The write-ahead record was saved and the file replaced, then the process died.
    store.save(with_trip(b.ledger, Trip("openai", "2026-05-20", at("2026-05-20T09:00:00"),
                                        "cap", planned=cut, planned_sha=sha256(
                                            edited.text.encode()))))
    gateway.write_text(edited.text)
    b2 = h.breaker(at("2026-05-20T09:05:00"))
    assert b2.ledger.trips[0].written
    b2.check(at("2026-05-20T09:05:00"))
    assert [c["type"] for c in h.cards()] == ["BREAKER_TRIPPED"]
    assert b2.check(at("2026-05-21T00:00:00")) == "restored openai for 4 place(s)"
    assert gateway.read_text() == GATEWAY_JSON


def test_dry_run_prints_the_diff_and_writes_nothing(tmp_path: Path, gateway: Path) -> None:
    h = Harness(tmp_path, gateway)
    writer = ConfigWriter(gateway)
    b = Breaker(h.config, now=at("2026-05-20T09:00:00"), writer=writer,
                store=LedgerStore(h.config.state_dir), outbox=h.outbox, dry_run=True,
                echo=h.lines.append)
    said = h.feed(b, [served("openai/gpt-5.5")] * 4, at("2026-05-20T09:10:00"))
    assert said.startswith("would cut openai off")
    assert any('-          "openai/gpt-5.2",' in line for line in h.lines)
    assert gateway.read_text() == GATEWAY_JSON
    assert h.cards() == []
    assert not (h.config.state_dir / "ledger.json").exists()


def test_diffs_never_show_a_secret() -> None:
    text = '      "apiKey": "sk-test-0123456789abcdef",\n  token: \'abc123456\',\n'
    assert "sk-test" not in redact_config_text(text)
    assert "abc123456" not in redact_config_text(text)
