"""Which ML Metadata store a command talks to: the workspace's SQLite file by default, or a
shared MySQL database or metadata gRPC service (`metadata` in the config)."""

from __future__ import annotations

import os
from typing import Union

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline.config import Config, ConfigError

DEFAULT_PORTS = {"mysql": 3306, "grpc": 8080}


def connection_config(config: Config) -> Union[metadata_store_pb2.ConnectionConfig, metadata_store_pb2.MetadataStoreClientConfig]:
    """The store's connection; a MySQL password comes from the environment, never the config file."""
    settings = config.metadata
    port = settings.port or DEFAULT_PORTS.get(settings.kind, 0)
    if settings.kind == "mysql":
        return metadata_store_pb2.ConnectionConfig(mysql=metadata_store_pb2.MySQLDatabaseConfig(
            host=settings.host, port=port, database=settings.database, user=settings.user,
            password=os.environ.get(settings.password_env, ""),
        ))
    if settings.kind == "grpc":
        return metadata_store_pb2.MetadataStoreClientConfig(host=settings.host, port=port)
    # What TFX's sqlite_metadata_connection_config builds, without importing TFX (and TensorFlow).
    path = os.path.abspath(config.metadata_path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sqlite = metadata_store_pb2.SqliteMetadataSourceConfig(
        filename_uri=path, connection_mode=metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE)
    return metadata_store_pb2.ConnectionConfig(sqlite=sqlite)


def pipeline_connection_config(config: Config) -> metadata_store_pb2.ConnectionConfig:
    """The store a local run writes to: TFX's local runner needs a database, not a service."""
    connection = connection_config(config)
    if not isinstance(connection, metadata_store_pb2.ConnectionConfig):
        raise ConfigError("config key 'metadata.kind' is grpc, which report and models can read but a local run cannot "
                          "write: set metadata.kind to sqlite (the default) or mysql for `textflow run`")
    return connection


def store_exists(config: Config) -> bool:
    """False only for a workspace whose SQLite store was never written (nothing has run there)."""
    return config.metadata.kind != "sqlite" or os.path.exists(config.metadata_path)


def describe(config: Config) -> str:
    """The store as messages name it."""
    settings = config.metadata
    if settings.kind == "sqlite":
        return config.metadata_path
    port = settings.port or DEFAULT_PORTS[settings.kind]
    return f"{settings.kind}://{settings.host}:{port}" + (f"/{settings.database}" if settings.kind == "mysql" else "")


def open_store(config: Config) -> metadata_store.MetadataStore:
    return metadata_store.MetadataStore(connection_config(config))
