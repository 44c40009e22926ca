"""pipeline/config.py: the one place that reads the environment, Spaces' variables included."""

from __future__ import annotations

import pytest

from pipeline.config import Config

SPACE = {"SYSTEM": "spaces", "SPACE_ID": "someone/toonforge"}


def test_defaults_listen_on_loopback_and_know_no_space(tmp_path):
    config = Config.from_env({}, spaces_volume=tmp_path)
    assert (config.server_name, config.server_port) == ("127.0.0.1", 7860)
    assert (config.on_spaces, config.space_id, config.zero_gpu) == (False, "", False)
    assert config.data_dir == Config().data_dir  # a /data folder off Spaces is none of ours


def test_gradio_server_variables_set_where_to_listen(tmp_path):
    config = Config.from_env({"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "8123"})
    assert (config.server_name, config.server_port) == ("0.0.0.0", 8123)
    with pytest.raises(ValueError, match="GRADIO_SERVER_PORT"):
        Config.from_env({"GRADIO_SERVER_PORT": "http"})


def test_a_space_listens_on_every_interface_and_keeps_results_on_its_volume(tmp_path):
    config = Config.from_env(SPACE, spaces_volume=tmp_path)
    assert config.on_spaces and config.space_id == "someone/toonforge"
    assert config.server_name == "0.0.0.0"  # even if GRADIO_SERVER_NAME were missing
    assert config.data_dir == tmp_path / "toonforge"
    # The TTL and the disk cap still apply there.
    assert (config.result_ttl_s, config.max_disk_bytes) == (Config().result_ttl_s, Config().max_disk_bytes)


def test_a_space_without_a_volume_and_explicit_settings(tmp_path):
    assert Config.from_env(SPACE, spaces_volume=tmp_path / "absent").data_dir == Config().data_dir
    chosen = Config.from_env({**SPACE, "TOONFORGE_DATA_DIR": str(tmp_path / "mine")}, spaces_volume=tmp_path)
    assert chosen.data_dir == tmp_path / "mine"
    named = Config.from_env({**SPACE, "GRADIO_SERVER_NAME": "127.0.0.1"}, spaces_volume=tmp_path)
    assert named.server_name == "127.0.0.1"


def test_space_id_counts_only_on_spaces_and_zero_gpu_is_read():
    assert Config.from_env({"SPACE_ID": "someone/toonforge"}).space_id == ""
    assert Config.from_env({**SPACE, "SPACES_ZERO_GPU": "true"}).zero_gpu
    assert not Config.from_env({**SPACE, "SPACES_ZERO_GPU": "false"}).zero_gpu
