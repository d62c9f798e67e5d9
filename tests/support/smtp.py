"""A tiny local SMTP server for tests (no ``smtpd``/``aiosmtpd``): records every message.

It speaks just enough of RFC 5321 for ``smtplib``: EHLO/HELO, AUTH PLAIN, MAIL, RCPT, DATA,
RSET, NOOP, QUIT. ``refuse`` makes it answer MAIL with a temporary failure.
"""

from __future__ import annotations

import base64
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message


@dataclass
class Mailbox:
    messages: list[Message] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    refuse: bool = False


def _handler(box: Mailbox) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")

        def handle(self) -> None:
            self.reply("220 fake-smtp ready")
            while line := self.rfile.readline():
                verb, _, arg = line.decode().rstrip("\r\n").partition(" ")
                if not self.answer(verb.upper(), arg):
                    return

        def answer(self, verb: str, arg: str) -> bool:
            if verb == "EHLO":
                self.reply("250-fake-smtp")
                self.reply("250 AUTH PLAIN")
            elif verb == "AUTH":
                _, user, password = base64.b64decode(arg.split(" ")[1]).decode().split("\0")
                box.logins.append((user, password))
                self.reply("235 2.7.0 authenticated")
            elif verb == "MAIL" and box.refuse:
                self.reply("451 4.3.0 try again later")
            elif verb == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                box.messages.append(message_from_bytes(self.read_data()))
                self.reply("250 2.0.0 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return False
            else:  # HELO, MAIL, RCPT, RSET, NOOP
                self.reply("250 ok")
            return True

        def read_data(self) -> bytes:
            lines = []
            while (line := self.rfile.readline()) not in (b".\r\n", b""):
                lines.append(line[1:] if line.startswith(b"..") else line)
            return b"".join(lines)

    return Handler


@contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    """A running server on 127.0.0.1 and a free port, stopped on exit."""
    box = Mailbox()
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _handler(box))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
