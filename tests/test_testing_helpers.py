"""crmcore.testing's real servers for plugin tests: the SMTP server (aiosmtpd on 127.0.0.1) and
the plumbing of local provider stand-ins (LocalHTTPServer). Every check talks to them over real
sockets, with the standard library's clients."""

from __future__ import annotations

import base64
import http.client
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmcore.testing import HttpAnswer, HttpRequest, LocalHTTPServer, SmtpServer, parse_basic_auth


def email(to: str = "ann@buyer.example", subject: str = "Hello") -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "Acme <sales@acme.example>", to, subject
    message.set_content("Grüße aus Wien\n")
    return message


def send(server: SmtpServer, message: EmailMessage | None = None, **login: str) -> None:
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        if login:
            client.login(login["user"], login["password"])
        client.send_message(message or email())


def refused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


# -- SMTP ----------------------------------------------------------------------------------------


def test_a_message_arrives_parsed_with_its_envelope(smtp_server):
    assert smtp_server.host == "127.0.0.1" and smtp_server.port > 0
    send(smtp_server, email(subject="Your quote Q-1"))
    (arrived,) = smtp_server.messages
    assert isinstance(arrived, EmailMessage)
    assert arrived["Subject"] == "Your quote Q-1" and arrived["From"] == "Acme <sales@acme.example>"
    assert arrived.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Grüße aus Wien\n"  # CRLF on the wire
    (envelope,) = smtp_server.envelopes
    assert envelope.mail_from == "sales@acme.example" and envelope.rcpt_tos == ["ann@buyer.example"]
    assert smtp_server.logins == []


def test_what_a_test_reads_is_a_copy(smtp_server):
    seen = smtp_server.messages
    send(smtp_server)
    assert seen == [] and len(smtp_server.messages) == 1


def test_wait_for_returns_once_senders_in_other_threads_are_done(smtp_server):
    def sender(n: int) -> None:
        for i in range(5):
            send(smtp_server, email(to=f"r{n}-{i}@buyer.example"))

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    arrived = smtp_server.wait_for(30, timeout=20)
    for thread in threads:
        thread.join()
    assert len(arrived) == 30
    assert sorted(e.rcpt_tos[0] for e in smtp_server.envelopes) == sorted(
        f"r{n}-{i}@buyer.example" for n in range(6) for i in range(5))


def test_wait_for_fails_the_test_when_too_few_arrive(smtp_server):
    send(smtp_server)
    with pytest.raises(AssertionError, match=r"2 email\(s\) expected .* within 0.2 s, 1 arrived"):
        smtp_server.wait_for(2, timeout=0.2)


@pytest.mark.parametrize(("where", "reply", "error"), [
    ("rcpt", "550 5.1.1 No such user here", smtplib.SMTPRecipientsRefused),
    ("data", "451 4.3.0 Try again later", smtplib.SMTPDataError),
])
def test_the_server_refuses_when_told_and_keeps_nothing(smtp_server, where, reply, error):
    setattr(smtp_server, f"{where}_reply", reply)
    with pytest.raises(error) as raised:
        send(smtp_server)
    assert reply.split()[0] in str(raised.value)
    assert smtp_server.messages == [] and smtp_server.envelopes == []
    setattr(smtp_server, f"{where}_reply", None)
    send(smtp_server)
    assert len(smtp_server.messages) == 1


def test_a_login_is_required_and_checked(make_smtp_server):
    server = make_smtp_server(login=("mailer@acme.example", "s3cret"), auth_require_tls=False)
    with pytest.raises(smtplib.SMTPAuthenticationError) as raised:
        send(server, user="mailer@acme.example", password="wrong")
    assert raised.value.smtp_code == 535
    send(server, user="mailer@acme.example", password="s3cret")
    assert server.logins == ["mailer@acme.example"] and len(server.messages) == 1


def test_tls_from_the_first_byte(make_smtp_server, tls_certificate):
    server = make_smtp_server(implicit_tls=tls_certificate.server_context())
    with smtplib.SMTP_SSL(server.host, server.port, timeout=5, context=tls_certificate.client_context()) as client:
        client.send_message(email())
    assert len(server.messages) == 1


def test_starttls_and_a_login_over_it(make_smtp_server, tls_certificate):
    server = make_smtp_server(tls_context=tls_certificate.server_context(), require_starttls=True,
                              login=("mailer@acme.example", "s3cret"))
    with smtplib.SMTP(server.host, server.port, timeout=5) as client, \
            pytest.raises(smtplib.SMTPSenderRefused, match="STARTTLS"):  # nothing before STARTTLS
        client.send_message(email())
    with smtplib.SMTP("localhost", server.port, timeout=5) as client:
        client.starttls(context=tls_certificate.client_context())
        client.login("mailer@acme.example", "s3cret")
        client.send_message(email())
    assert server.logins == ["mailer@acme.example"] and len(server.messages) == 1


def test_each_server_has_its_own_port_and_stopping_frees_it(make_smtp_server):
    first, second = make_smtp_server(), make_smtp_server()
    assert first.port != second.port
    send(second)
    assert first.messages == [] and len(second.messages) == 1
    first.stop()
    assert refused(first.port)
    first.stop()  # twice is harmless
    send(second)
    assert len(second.messages) == 2


def test_as_a_context_manager():
    with SmtpServer() as server:
        send(server)
        assert len(server.messages) == 1
    assert refused(server.port)


def test_bad_aiosmtpd_options_fail_at_start():
    with pytest.raises(TypeError):
        SmtpServer(no_such_option=True).start()


def test_crmcore_testing_does_not_need_aiosmtpd_until_a_server_starts():
    code = "import sys; sys.modules['aiosmtpd'] = None; import crmcore.testing; print('imported')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "imported"


# -- local HTTP servers ----------------------------------------------------------------------------


def fetch(url: str, data: bytes | None = None, headers: dict[str, str] | None = None,
          timeout: float = 5) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def raw_request(server: LocalHTTPServer, method: str, path: str, timeout: float = 5) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    connection.request(method, path)
    return connection.getresponse()


def test_a_function_answers_and_every_request_is_kept():
    def answer(request: HttpRequest) -> HttpAnswer:
        return HttpAnswer.json(201, {"seen": request.path, "q": request.query}, headers={"X-Fake": "yes"})

    with LocalHTTPServer(answer) as server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        status, headers, body = fetch(server.url + "/v1/things?a=1&b=", data=b"name=Ann",
                                      headers={"Authorization": "Bearer t0k", "Content-Type": "text/plain"})
        assert status == 201 and body == b'{"seen": "/v1/things", "q": {"a": "1", "b": ""}}'
        assert headers["Content-Type"] == "application/json" and headers["X-Fake"] == "yes"
        assert headers["Content-Length"] == str(len(body))
        assert fetch(server.url + "/")[0] == 201
        first, second = server.http_requests
    assert (first.method, first.target, first.path, first.query_string) == ("POST", "/v1/things?a=1&b=",
                                                                            "/v1/things", "a=1&b=")
    assert first.body == b"name=Ann" and first.headers["authorization"] == "Bearer t0k"
    assert all(name == name.lower() for name in first.headers)
    assert (second.method, second.body, second.query) == ("GET", b"", {})


def test_methods_not_served_get_501_and_are_not_handled():
    with LocalHTTPServer(lambda request: HttpAnswer(204)) as server:
        assert raw_request(server, "PUT", "/x").status == 501
        assert raw_request(server, "GET", "/x").status == 204
        assert [r.method for r in server.http_requests] == ["GET"]


def test_without_a_function_handle_must_be_overridden():
    with pytest.raises(NotImplementedError, match="override"):
        LocalHTTPServer().handle(HttpRequest("GET", "/", {}, b""))


@dataclass
class FakeCounter(LocalHTTPServer):
    """A provider stand-in as the plugins write them: a dataclass with its own state."""

    token: str
    hang: bool = False
    counted: list[str] = field(default_factory=list)
    methods = ("GET", "POST", "DELETE")

    def handle(self, request: HttpRequest) -> HttpAnswer | None:
        scripted = self.next_scripted()
        if self.hang:
            self.hold()
            return None
        if scripted is not None:
            return HttpAnswer(scripted)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return HttpAnswer(401, b"who are you?", "text/plain")
        self.counted.append(request.method)
        return HttpAnswer(200, str(len(self.counted)).encode(), "text/plain")


def test_a_dataclass_fake_serves_its_own_behaviour():
    fake = FakeCounter("t0k")
    with pytest.raises(AssertionError, match="start the server first"):
        fake.url  # noqa: B018
    with fake:
        auth = {"Authorization": "Bearer t0k"}
        assert fetch(fake.url, headers=auth)[2] == b"1"
        assert fetch(fake.url, headers=auth, data=b"")[2] == b"2"
        assert fetch(fake.url)[:1] == (401,)
        assert raw_request(fake, "DELETE", "/").status == 401  # served (methods), refused by the fake
    assert fake.counted == ["GET", "POST"] and len(fake.http_requests) == 4


def test_scripted_statuses_answer_the_next_requests_in_order():
    with FakeCounter("t0k") as fake:
        fake.script(429, 503)
        auth = {"Authorization": "Bearer t0k"}
        assert [fetch(fake.url, headers=auth)[0] for _ in range(3)] == [429, 503, 200]
        assert fake.next_scripted() is None


def test_a_hanging_fake_holds_requests_until_released():
    with FakeCounter("t0k") as fake:
        fake.hang = True
        with pytest.raises(TimeoutError):
            fetch(fake.url, headers={"Authorization": "Bearer t0k"}, timeout=0.3)
        fake.release()
        assert fake.hang is False
        assert fetch(fake.url, headers={"Authorization": "Bearer t0k"})[2] == b"1"


def held_request(fake: FakeCounter) -> tuple[threading.Thread, list[BaseException]]:
    """A request sent to a hanging ``fake`` from another thread, once the fake holds it; the list
    gets what the client saw instead of an answer."""
    outcome: list[BaseException] = []

    def client() -> None:
        try:
            raw_request(fake, "GET", "/", timeout=10)
        except (http.client.RemoteDisconnected, ConnectionError) as exc:
            outcome.append(exc)

    fake.hang = True
    thread = threading.Thread(target=client)
    thread.start()
    while not fake.http_requests:
        threading.Event().wait(0.01)
    return thread, outcome


def test_a_held_request_released_gets_no_answer_at_all():
    with FakeCounter("t0k") as fake:
        thread, outcome = held_request(fake)
        fake.release()
        thread.join(timeout=5)
        assert outcome and not thread.is_alive()


def test_stop_frees_held_requests_and_the_port_and_may_start_again():
    fake = FakeCounter("t0k").start()
    port = fake.port
    thread, outcome = held_request(fake)
    fake.stop()
    thread.join(timeout=5)
    assert outcome and not thread.is_alive() and refused(port)
    assert fake.port == port  # a stopped server still names where it listened
    fake.stop()  # twice is harmless
    with fake:
        assert fetch(fake.url, headers={"Authorization": "Bearer t0k"})[2] == b"1"


def test_a_second_listener_over_tls(tls_certificate):
    with LocalHTTPServer(lambda request: HttpAnswer(200, request.path.encode(), "text/plain")) as server:
        secure = server.listen(tls=tls_certificate.server_context())
        assert secure.startswith("https://127.0.0.1:") and secure != server.url
        with urllib.request.urlopen(secure + "/cert", timeout=5, context=tls_certificate.client_context()) as answer:
            assert answer.read() == b"/cert"
        with pytest.raises(urllib.error.URLError):  # an untrusted client: the handshake fails quietly
            urllib.request.urlopen(secure + "/cert", timeout=5, context=ssl.create_default_context())
        assert fetch(server.url + "/plain")[2] == b"/plain"


# -- Basic auth -----------------------------------------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@given(user=st.text().filter(lambda s: ":" not in s), password=st.text())
def test_basic_auth_reads_back_what_a_client_sends(user, password):
    assert parse_basic_auth(basic(user, password)) == (user, password)
    assert HttpRequest("GET", "/", {"authorization": basic(user, password)}, b"").basic_auth == (user, password)


@pytest.mark.parametrize("header", [None, "", "Bearer abc", "Basic !!!not-base64", "Basic " +
                                    base64.b64encode(b"\xff\xfe").decode(), "basic dTpw"])
def test_basic_auth_that_is_missing_or_unreadable_is_none(header):
    assert parse_basic_auth(header) is None
