"""The ML Metadata store a command talks to: the workspace's SQLite file, a MySQL database or a gRPC service."""

import pytest

from pipeline.config import ConfigError, load_config
from pipeline.metadata_connection import connection_config, describe, pipeline_connection_config, store_exists
from operations.model_records import model_records


def test_sqlite_is_the_workspace_file_and_a_missing_one_means_nothing_ran(tmp_path):
    config = load_config(overrides={"workspace": str(tmp_path / "ws")})
    assert connection_config(config).sqlite.filename_uri == str(tmp_path / "ws" / "metadata.sqlite")
    assert not store_exists(config) and model_records(config) == []
    assert describe(config).endswith("metadata.sqlite")


def test_mysql_takes_its_password_from_the_environment_and_a_run_can_write_it(monkeypatch):
    monkeypatch.setenv("MLMD_PW", "s3cret")
    config = load_config(overrides={"metadata": {"kind": "mysql", "host": "db.internal", "database": "tfx",
                                                 "user": "textflow", "password_env": "MLMD_PW"}})
    mysql = pipeline_connection_config(config).mysql
    assert (mysql.host, mysql.port, mysql.database, mysql.user, mysql.password) == ("db.internal", 3306, "tfx", "textflow", "s3cret")
    assert describe(config) == "mysql://db.internal:3306/tfx"


def test_grpc_is_readable_but_a_local_run_refuses_it():
    config = load_config(overrides={"metadata.kind": "grpc", "metadata.host": "127.0.0.1"})
    client = connection_config(config)
    assert (client.host, client.port) == ("127.0.0.1", 8080)
    with pytest.raises(ConfigError, match="cannot write"):
        pipeline_connection_config(config)
    with pytest.raises(ConfigError, match="metadata.kind"):
        load_config(overrides={"metadata.kind": "postgres"})
