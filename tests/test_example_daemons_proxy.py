"""The example fleet's proxy serves its site with the real nginx.

The proxy node is built as a Debian node with the real nginx package and reconciler's
files (daemon_node.py); nginx starts inside the node's namespaces, where every app node
of the upstream list has its address on the loopback interface and one tiny HTTP server
answers for all of them. Requests go over the node's own address, HTTP and HTTPS.
"""

from __future__ import annotations

import functools
import http.client
import re
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from daemon_node import NodeNamespace, build_node, init_example, skip_unless_runnable

pytestmark = skip_unless_runnable()

# By the addressing plan in fleet.xml: 10.<cluster>.<product + class>.<number>.
PROXY, PROXY_ADDRESS = "proxy-01.tickets.chi1.sa", "10.10.11.1"
SITE = "/etc/nginx/sites-available/sa.conf"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    certificate: bytes | None


class App(BaseHTTPRequestHandler):
    """Every app node: 200 and the path it was asked for."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"app saw {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads replies, not logs."""


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("example")
    return init_example(tmp_path_factory, base / "fleet", base / "home")


@pytest.fixture(scope="module")
def proxy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("proxy") / "root"
    build_node(tmp_path_factory, PROXY, root)
    return root


def upstreams(root: Path) -> list[tuple[str, int]]:
    """The address and port of every server of the site's upstream block."""
    site = (root / SITE.lstrip("/")).read_text()
    return [(address, int(port))
            for address, port in re.findall(r"^\s*server ([\d.]+):(\d+) ", site, re.M)]


def locations(root: Path) -> list[str]:
    """The path of every location of the site and of its status server."""
    texts = [(root / SITE.lstrip("/")).read_text(),
             (root / "etc/nginx/snippets/status.conf").read_text()]
    return [match for text in texts
            for match in re.findall(r"^\s*location\s+(?:=\s+)?(\S+)\s*\{", text, re.M)]


def security_headers(root: Path) -> dict[str, str]:
    """The headers the site's snippet adds, with their values."""
    text = (root / "etc/nginx/snippets/security-headers.conf").read_text()
    return {name: value.strip('"')
            for name, value in re.findall(r"^add_header (\S+) (.+?)(?: always)?;$", text, re.M)}


def start_nginx(ns: NodeNamespace) -> None:
    """nginx.service's ExecStart: it returns once its sockets are open and it has forked."""
    done = ns.run("/usr/sbin/nginx", "-g", "daemon on; master_process on;")
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def proxy(proxy_root: Path) -> Iterator[NodeNamespace]:
    """nginx running on the proxy node, every app node answering."""
    apps = upstreams(proxy_root)
    ports = {port for _, port in apps}
    with NodeNamespace(proxy_root, [PROXY_ADDRESS, *(address for address, _ in apps)]) as ns:
        servers = [ns.in_network(functools.partial(ThreadingHTTPServer, ("0.0.0.0", port), App))
                   for port in ports]
        for server in servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        start_nginx(ns)
        yield ns
        for server in servers:
            server.shutdown()
            server.server_close()


def fetch(ns: NodeNamespace, port: int, host: str, path: str, tls: bool,
          address: str = PROXY_ADDRESS) -> Reply:
    """One GET to the proxy (its own address by default); over TLS without verifying
    (the certificate is compared with the repo's instead)."""
    sock = ns.connect(address, port)
    certificate = None
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        sock = context.wrap_socket(sock, server_hostname=host)
        certificate = sock.getpeercert(binary_form=True)
    connection = http.client.HTTPConnection(host)
    connection.sock = sock
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read(), certificate)
    finally:
        connection.close()


def assert_security_headers(reply: Reply, expected: dict[str, str], what: str) -> None:
    got = {name: reply.headers.get(name) for name in expected}
    assert got == expected, f"{what} answered {reply.status} without its security headers"


def test_every_location_answers_with_every_security_header(
        proxy: NodeNamespace, proxy_root: Path) -> None:
    expected = security_headers(proxy_root)
    assert {"Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options",
            "Referrer-Policy"} <= set(expected)
    paths = locations(proxy_root)
    assert {"/", "/static/", "/api/seatmap/", "/sa-maintenance.html", "/nginx_status"} <= set(
        paths)
    for path in paths:
        # The status port refuses the node's own address: it is not the monitoring network.
        for port, tls, status in ((443, True, {200, 404}), (80, False, {301}),
                                  (8081, False, {403, 404})):
            reply = fetch(proxy, port, "tickets.sa.example", path, tls)
            assert reply.status in status, (port, path, reply)
            assert_security_headers(reply, expected, f"port {port} {path}")


def test_a_cached_location_keeps_the_security_headers_on_a_cache_hit(
        proxy: NodeNamespace, proxy_root: Path) -> None:
    expected = security_headers(proxy_root)
    first = fetch(proxy, 443, "tickets.sa.example", "/static/app.css", tls=True)
    second = fetch(proxy, 443, "tickets.sa.example", "/static/app.css", tls=True)
    assert (first.status, second.status) == (200, 200)
    assert second.body == b"app saw /static/app.css\n"
    assert second.headers["X-Cache-Status"] == "HIT"
    assert_security_headers(second, expected, "a cache hit")


def test_the_status_page_answers_the_monitoring_network_only(proxy: NodeNamespace) -> None:
    allowed = fetch(proxy, 8081, "status", "/nginx_status", tls=False, address="127.0.0.1")
    assert allowed.status == 200 and allowed.body.startswith(b"Active connections:")
    refused = fetch(proxy, 8081, "status", "/nginx_status", tls=False)
    assert refused.status == 403


def test_https_serves_the_repos_certificate_for_every_server_name(
        proxy: NodeNamespace, proxy_root: Path, example: Path) -> None:
    key = (proxy_root / "etc/nginx/tls/sa.key").stat()
    assert (key.st_mode & 0o777, key.st_uid, key.st_gid) == (0o600, 0, 0)
    pem = (example / "templates/proxy/tls/sa-demo.crt").read_text()
    block = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", pem, re.S)
    assert block is not None
    for host in ("tickets.sa.example", "www.tickets.sa.example"):
        reply = fetch(proxy, 443, host, "/", tls=True)
        assert (reply.status, reply.body) == (200, b"app saw /\n")
        assert reply.certificate == ssl.PEM_cert_to_DER_cert(block.group(0))


def test_plain_http_redirects_to_the_same_url_over_https(proxy: NodeNamespace) -> None:
    reply = fetch(proxy, 80, "www.tickets.sa.example", "/api/seatmap/7?row=3", tls=False)
    assert reply.status == 301
    assert reply.headers["Location"] == "https://www.tickets.sa.example/api/seatmap/7?row=3"


def test_the_maintenance_page_answers_when_no_app_node_does(
        proxy_root: Path, tmp_path: Path) -> None:
    expected = security_headers(proxy_root)
    page = (proxy_root / "var/www/html/sa-maintenance.html").read_bytes()
    with NodeNamespace(proxy_root, [PROXY_ADDRESS]) as ns:
        start_nginx(ns)
        reply = fetch(ns, 443, "tickets.sa.example", "/", tls=True)
    assert (reply.status, reply.body) == (502, page)
    assert_security_headers(reply, expected, "the maintenance page")
