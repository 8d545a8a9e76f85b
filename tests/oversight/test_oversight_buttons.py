"""Card buttons: short callback data, made once per card, kept across a restart."""

from __future__ import annotations

from pathlib import Path

from watcher.alerts.outbox import Card
from watcher.core.transitions import Alert, TransitionType
from watcher.oversight.buttons import ButtonStore

T0 = 1_790_000_000.0
P, F1 = "ollama/glm-5.1:cloud", "deepseek/deepseek-v4-flash"


def _card(card_id: int, type_: TransitionType, agents: tuple[str, ...] = ("nexus",)) -> Card:
    alert = Alert(type_, ts=T0, agents=agents, from_model=P, to_model=F1, failure_class="throttle")
    return Card(card_id, type_.value, agents, False, alert, "text", "pending", 0, False, T0)


def test_a_fallback_card_gets_three_buttons_with_short_callback_data(tmp_path: Path) -> None:
    store = ButtonStore(tmp_path / "o.sqlite3")
    markup = store.markup(_card(1, TransitionType.FALLBACK_FIRED), T0)
    assert markup is not None
    (row,) = markup["inline_keyboard"]
    assert [b["text"] for b in row] == ["Hold on fallback 1 h", "Fail back now", "Mute 30 min"]
    for b in row:
        assert b["callback_data"].startswith("b:") and len(b["callback_data"].encode()) <= 64
    mute = store.button(row[2]["callback_data"][2:])
    assert mute is not None and mute.payload["key"] == f"FALLBACK_FIRED|nexus|{P}|{F1}|throttle"


def test_cards_without_an_action_get_no_buttons_and_never_suppressed_ones_no_mute(
    tmp_path: Path,
) -> None:
    store = ButtonStore(tmp_path / "o.sqlite3")
    assert store.markup(_card(1, TransitionType.RECOVERY), T0) is None
    assert store.markup(_card(2, TransitionType.FALLBACK_FIRED, agents=()), T0) is None
    markup = store.markup(_card(3, TransitionType.HARD_FAILURE), T0)
    assert markup is not None
    assert [b["text"] for b in markup["inline_keyboard"][0]] == [
        "Hold on fallback 1 h",
        "Fail back now",
    ]


def test_a_resent_card_keeps_its_buttons_and_their_age_and_they_survive_a_restart(
    tmp_path: Path,
) -> None:
    store = ButtonStore(tmp_path / "o.sqlite3")
    card = _card(7, TransitionType.FALLBACK_FIRED)
    first = store.markup(card, T0)
    assert store.markup(card, T0 + 60) == first  # a retry after a failed send
    store.set_last_update_id(99)
    store.close()

    again = ButtonStore(tmp_path / "o.sqlite3")
    assert again.last_update_id() == 99
    assert first is not None
    button = again.button(first["inline_keyboard"][0][0]["callback_data"][2:])
    assert button is not None and button.issued_at == T0 and button.action == "hold"


def test_a_confirmation_closes_once(tmp_path: Path) -> None:
    store = ButtonStore(tmp_path / "o.sqlite3")
    (button, *_) = store.issue(_card(1, TransitionType.FALLBACK_FIRED), T0)
    conf = store.ask(button, 42, T0 + 5)
    assert store.confirmation(conf.id) == conf
    assert store.close_confirmation(conf.id, "done") is True
    assert store.close_confirmation(conf.id, "done") is False
    closed = store.confirmation(conf.id)
    assert closed is not None and closed.state == "done"
