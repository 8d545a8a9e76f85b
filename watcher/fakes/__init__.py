"""Loopback fakes of the world the watcher touches (journal, model servers, Telegram).

They ship in the package because ``failover-watcher demo`` runs on them; tests use the
same ones. Every server here binds loopback only, on one HTTP base
(``watcher.fakes._http.LoopbackHttpServer``).
"""
