"""The key that seals env values at rest: where it comes from, bad keys refused, the key file
made once and private. (Env values sealed at rest on SQLite and PostgreSQL are in
tests/integration/security/test_env_at_rest.py.)"""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import pytest
from relman_common.secretbox import KEY_FILE, SecretBox, SecretBoxError


def test_the_key_file_is_made_once_private_and_shared_by_racing_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RELMAN_SECRET_KEY", raising=False)
    boxes: list[SecretBox] = []
    start = threading.Barrier(8)

    def open_box() -> None:
        start.wait()
        boxes.append(SecretBox.from_env_or_file(tmp_path / "data"))

    threads = [threading.Thread(target=open_box) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    key_file = tmp_path / "data" / KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(base64.b64decode(key_file.read_text().strip())) == 32
    assert [p.name for p in key_file.parent.iterdir()] == [KEY_FILE]
    sealed = boxes[0].seal(b"value", b"R1")
    assert len(boxes) == 8 and all(b.open(sealed, b"R1") == b"value" for b in boxes)


def test_where_the_key_comes_from_and_bad_keys_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = SecretBox.generate_key()
    monkeypatch.setenv("RELMAN_SECRET_KEY", base64.b64encode(key).decode())
    sealed = SecretBox(key).seal(b"value", b"R1")
    assert SecretBox.from_env_or_file(tmp_path).open(sealed, b"R1") == b"value"
    assert not (tmp_path / KEY_FILE).exists()

    monkeypatch.setenv("RELMAN_SECRET_KEY", "not base64!")
    with pytest.raises(SecretBoxError, match="RELMAN_SECRET_KEY does not hold valid base64"):
        SecretBox.from_env_or_file(tmp_path)
    monkeypatch.setenv("RELMAN_SECRET_KEY", base64.b64encode(b"short").decode())
    with pytest.raises(SecretBoxError, match="base64 of 32 bytes, not 5 bytes"):
        SecretBox.from_env_or_file(tmp_path)

    with pytest.raises(SecretBoxError, match="secret key file not found"):
        SecretBox.from_env_or_file(tmp_path, tmp_path / "missing.key")
    explicit = tmp_path / "explicit.key"  # an explicit file wins over RELMAN_SECRET_KEY
    explicit.write_text(base64.b64encode(key).decode() + "\n")
    assert SecretBox.from_env_or_file(tmp_path, explicit).open(sealed, b"R1") == b"value"
