"""Settings → connections: every Kafka client gets the same security, secrets stay secret."""

from __future__ import annotations

import json
import logging
import ssl
import subprocess
from pathlib import Path
from typing import Any, ClassVar

import pytest
from faststream.kafka.security import parse_security
from pydantic import ValidationError

from services.runtime.connections import (
    kafka_client_kwargs,
    kafka_security,
    mongo_client_kwargs,
    redact_uri,
)
from services.runtime.logs import JsonFormatter, register_secret
from services.runtime.settings import ConnectionSettings, ServiceSettings

PASSWORD = "pa55-w0rd-Kafka!"


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real self-signed CA certificate, so that an SSL context can load it."""
    folder = tmp_path_factory.mktemp("ca")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=test CA", "-keyout", str(folder / "ca.key"), "-out", str(folder / "ca.pem")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return folder / "ca.pem"


def settings(**values: Any) -> ConnectionSettings:
    return ConnectionSettings(kafka_bootstrap_servers="broker:9096", **values)


def test_plaintext_adds_nothing() -> None:
    assert kafka_client_kwargs(settings()) == {"bootstrap_servers": "broker:9096"}
    assert kafka_security(settings()) is None


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_is_the_same_for_faststream_and_plain_clients(
    mechanism: str, ca_file: Path
) -> None:
    chosen = settings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="complaints", kafka_sasl_password=PASSWORD, kafka_ssl_ca_file=ca_file,
    )  # fmt: skip
    plain = kafka_client_kwargs(chosen)
    assert plain["security_protocol"] == "SASL_SSL"
    assert plain["sasl_mechanism"] == mechanism
    assert (plain["sasl_plain_username"], plain["sasl_plain_password"]) == ("complaints", PASSWORD)
    context = plain["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    # FastStream's own translation of the security object gives the broker the same.
    through_faststream = parse_security(kafka_security(chosen))
    assert through_faststream.pop("ssl_context") is not None
    plain.pop("ssl_context")
    plain.pop("bootstrap_servers")
    assert through_faststream == plain


def test_sasl_plaintext_has_no_tls_and_ssl_has_no_sasl(ca_file: Path) -> None:
    sasl = kafka_client_kwargs(settings(
        kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="u", kafka_sasl_password=PASSWORD,
    ))  # fmt: skip
    assert sasl["security_protocol"] == "SASL_PLAINTEXT" and "ssl_context" not in sasl
    assert parse_security(kafka_security(settings(
        kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="u", kafka_sasl_password=PASSWORD,
    )))["security_protocol"] == "SASL_PLAINTEXT"  # fmt: skip
    tls = kafka_client_kwargs(settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=ca_file))
    assert tls["security_protocol"] == "SSL" and "sasl_mechanism" not in tls
    assert parse_security(kafka_security(
        settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=ca_file)
    ))["security_protocol"] == "SSL"  # fmt: skip


def test_credentials_from_files_as_kubernetes_mounts_them(tmp_path: Path) -> None:
    (tmp_path / "username").write_text("complaints\n")
    (tmp_path / "password").write_text(PASSWORD + "\n")
    chosen = settings(
        kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username_file=tmp_path / "username",
        kafka_sasl_password_file=tmp_path / "password",
    )  # fmt: skip
    assert chosen.kafka_sasl_credentials() == ("complaints", PASSWORD)


def test_settings_read_the_documented_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "complaints")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("MONGODB_URI", "mongodb://svc:hunter22@db:27017/?tls=true")
    read = ServiceSettings()
    assert read.kafka_sasl_credentials() == ("complaints", PASSWORD)
    # Printing the settings (a debugger, an error report) shows no secret.
    shown = repr(read) + str(read.model_dump())
    assert PASSWORD not in shown and "hunter22" not in shown


@pytest.mark.parametrize(("values", "named"), [
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "u"}, "KAFKA_SASL_PASSWORD"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_password": PASSWORD},
     "KAFKA_SASL_USERNAME"),
    ({"kafka_sasl_password": PASSWORD, "kafka_sasl_password_file": "/x"}, "not both"),
    ({"kafka_ssl_cert_file": "/cert.pem"}, "KAFKA_SSL_KEY_FILE"),
])  # fmt: skip
def test_a_missing_or_contradicting_setting_is_named_without_the_secret(
    values: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        settings(**values)
    assert named in str(raised.value)
    assert PASSWORD not in str(raised.value)


def test_an_unreadable_secret_file_names_the_setting(tmp_path: Path) -> None:
    chosen = settings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_username="u",
        kafka_sasl_password_file=tmp_path / "missing",
    )  # fmt: skip
    with pytest.raises(ValueError, match="KAFKA_SASL_PASSWORD_FILE"):
        chosen.kafka_sasl_credentials()


def test_store_tls_files_go_to_the_client(tmp_path: Path) -> None:
    found = mongo_client_kwargs(ConnectionSettings(
        mongodb_tls_ca_file=tmp_path / "ca.pem",
        mongodb_tls_certificate_key_file=tmp_path / "client.pem",
    ))  # fmt: skip
    assert found == {"tls": True, "tlsCAFile": str(tmp_path / "ca.pem"),
                     "tlsCertificateKeyFile": str(tmp_path / "client.pem")}  # fmt: skip
    assert mongo_client_kwargs(ConnectionSettings()) == {}


@pytest.mark.parametrize(("uri", "shown"), [
    ("mongodb://svc:s3cr%40t@db1:27017,db2:27017/?tls=true",
     "mongodb://svc:***@db1:27017,db2:27017/?tls=true"),
    ("mongodb+srv://svc:pw@cluster.example.net/complaints", "mongodb+srv://svc:***@cluster.example.net/complaints"),
    ("mongodb://127.0.0.1:27017/", "mongodb://127.0.0.1:27017/"),
])  # fmt: skip
def test_uris_are_shown_without_password(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown


def test_log_lines_never_carry_a_registered_secret_or_a_uri_password() -> None:
    register_secret(PASSWORD)
    formatter = JsonFormatter()

    def line(message: str, **extra: Any) -> dict[str, Any]:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, message, None, None)
        record.__dict__.update(extra)
        return dict(json.loads(formatter.format(record)))

    logged = line(f"login with {PASSWORD} failed", reason=f"password={PASSWORD}")
    assert PASSWORD not in json.dumps(logged)
    logged = line("store mongodb://svc:hunter22@db:27017/ unreachable")
    assert "hunter22" not in logged["msg"] and "mongodb://svc:***@db:27017/" in logged["msg"]


class RecordingAdmin:
    """Stands in for aiokafka's admin client: records the topics it is asked to create."""

    created: ClassVar[list[Any]] = []

    def __init__(self, **options: Any) -> None:
        self.options = options

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def list_topics(self) -> list[str]:
        return []

    async def create_topics(self, topics: list[Any]) -> None:
        RecordingAdmin.created = list(topics)


async def test_topics_are_created_with_the_replication_factor_the_cluster_wants(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from services.runtime import kafka

    monkeypatch.setattr(kafka, "AIOKafkaAdminClient", RecordingAdmin)
    monkeypatch.setenv("TOPIC_REPLICATION_FACTOR", "3")
    chosen = ServiceSettings().topic_replication_factor
    await kafka.ensure_topics("broker:9092", 6, "", {"cases.opened": 1000}, chosen)
    assert {topic.replication_factor for topic in RecordingAdmin.created} == {3}
    assert {topic.num_partitions for topic in RecordingAdmin.created} == {6}
    opened = next(t for t in RecordingAdmin.created if t.name == "cases.opened")
    assert opened.topic_configs == {"retention.ms": "1000"}
    monkeypatch.setenv("TOPIC_REPLICATION_FACTOR", "0")
    with pytest.raises(ValidationError):
        ServiceSettings()
