"""The one place that turns settings into connections: Kafka security for FastStream and
for every plain aiokafka client (admin, lag monitor, CLIs), and the store's client.

Secrets leave the settings only here, straight into the client objects; every password
handed out is also registered with the log formatter (services/runtime/logs.py), which
blanks it wherever it would appear, and URIs are only ever shown through ``redact_uri``.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure, PyMongoError, ServerSelectionTimeoutError

from services.runtime.logs import register_secret
from services.runtime.settings import ConnectionSettings

Document = dict[str, Any]

_SASL_SECURITY: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
    "PLAIN": SASLPlaintext,
    "SCRAM-SHA-256": SASLScram256,
    "SCRAM-SHA-512": SASLScram512,
}


def kafka_ssl_context(settings: ConnectionSettings) -> ssl.SSLContext | None:
    """The TLS context for SSL / SASL_SSL (verifies the broker and its host name)."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    key_password = settings.kafka_ssl_key_password
    if key_password is not None:
        register_secret(key_password.get_secret_value())
    context: ssl.SSLContext = create_ssl_context(
        cafile=settings.kafka_ssl_ca_file,
        certfile=settings.kafka_ssl_cert_file,
        keyfile=settings.kafka_ssl_key_file,
        password=key_password.get_secret_value() if key_password is not None else None,
    )
    return context


def kafka_security_kwargs(settings: ConnectionSettings) -> dict[str, Any]:
    """The security arguments of an aiokafka client (producer, consumer, admin)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    found: dict[str, Any] = {"security_protocol": protocol}
    context = kafka_ssl_context(settings)
    if context is not None:
        found["ssl_context"] = context
    credentials = settings.kafka_sasl_credentials()
    if credentials is not None:
        register_secret(credentials[1])
        found |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": credentials[0],
            "sasl_plain_password": credentials[1],
        }
    return found


def kafka_client_kwargs(settings: ConnectionSettings) -> dict[str, Any]:
    """``bootstrap_servers`` and security for a plain aiokafka client."""
    return {"bootstrap_servers": settings.kafka_bootstrap_servers,
            **kafka_security_kwargs(settings)}  # fmt: skip


def kafka_security(settings: ConnectionSettings) -> BaseSecurity | None:
    """The same security as FastStream's ``security=`` object for ``KafkaBroker``."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = kafka_ssl_context(settings)
    credentials = settings.kafka_sasl_credentials()
    if credentials is None:  # SSL
        return BaseSecurity(ssl_context=context, use_ssl=True)
    register_secret(credentials[1])
    security_class = _SASL_SECURITY[settings.kafka_sasl_mechanism]
    return security_class(
        credentials[0], credentials[1], ssl_context=context, use_ssl=protocol == "SASL_SSL"
    )


def as_client_kwargs(connection: str | dict[str, Any]) -> dict[str, Any]:
    """A bootstrap string (tests, tools on a plain local broker) or full client kwargs."""
    return {"bootstrap_servers": connection} if isinstance(connection, str) else dict(connection)


async def diagnose_kafka(connection: dict[str, Any], timeout: float = 10.0) -> str | None:
    """Why a broker cannot be used, in words an operator acts on; None if it answers.

    aiokafka reports a failed bootstrap as "Unable to bootstrap" and logs the cause only
    at ERROR on its own logger; this opens one connection the same way to name the cause
    (refused, TLS verification, authentication) without any credential in the text.
    """
    hosts = str(connection.get("bootstrap_servers", "")).split(",")
    host, _, port = hosts[0].strip().rpartition(":")
    settings = {key: connection[key] for key in (
        "security_protocol", "ssl_context", "sasl_mechanism", "sasl_plain_username",
        "sasl_plain_password") if key in connection}  # fmt: skip
    try:
        conn = await asyncio.wait_for(
            create_conn(host, int(port), request_timeout_ms=int(timeout * 1000), **settings),
            timeout=timeout,
        )
    except ssl.SSLCertVerificationError as exc:
        return f"TLS: the broker's certificate is not trusted ({exc.verify_message}); check KAFKA_SSL_CA_FILE"
    except ssl.SSLError as exc:
        return f"TLS handshake failed ({exc.reason or exc}); is the listener TLS (KAFKA_SECURITY_PROTOCOL)?"
    except KafkaError as exc:
        text = str(exc)
        if "uthenticat" in text or "SASL" in text:
            return (
                f"authentication failed for user {connection.get('sasl_plain_username')!r} "
                f"with {connection.get('sasl_mechanism')}: wrong username or password "
                f"(KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD) — broker said: {text}"
            )
        return f"{type(exc).__name__}: {text}"
    except (TimeoutError, OSError) as exc:
        return f"cannot reach {host}:{port}: {type(exc).__name__} {exc}".strip()
    except ValueError as exc:
        return f"bad KAFKA_BOOTSTRAP_SERVERS: {exc}"
    conn.close()
    return None


# --- the store ---------------------------------------------------------------------------


def describe_store_failure(failure: PyMongoError) -> str:
    """A store error in one line an operator acts on (the server's message, not its dump)."""
    if isinstance(failure, OperationFailure):
        message = (failure.details or {}).get("errmsg") or str(failure)
        hint = " (check the user and password in MONGODB_URI)" if failure.code in (13, 18) else ""
        return f"{message}{hint}"
    if isinstance(failure, ServerSelectionTimeoutError):
        # "host:port: <cause>, Timeout: …, Topology Description: …": the cause is enough.
        return f"cannot reach the store: {str(failure).split(', Timeout:')[0]}"
    return f"{type(failure).__name__}: {failure}"


def redact_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***`` (for logs, files and messages)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable URI>"
    if parts.password is None:
        return uri
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def mongo_client_kwargs(settings: ConnectionSettings) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if settings.mongodb_tls_ca_file is not None:
        found |= {"tls": True, "tlsCAFile": str(settings.mongodb_tls_ca_file)}
    if settings.mongodb_tls_certificate_key_file is not None:
        found |= {"tls": True,
                  "tlsCertificateKeyFile": str(settings.mongodb_tls_certificate_key_file)}  # fmt: skip
    return found


def mongo_client(settings: ConnectionSettings, **options: Any) -> AsyncMongoClient[Document]:
    """The store's client: the URI (credentials, tls=true, …) plus the TLS file settings."""
    uri = settings.mongodb_uri.get_secret_value()
    password = urlsplit(uri).password
    if password:
        register_secret(password)
        register_secret(unquote(password))
    return AsyncMongoClient(uri, **mongo_client_kwargs(settings), **options)
