import subprocess
import sys

import pytest

from wsrec.errors import SessionBusy
from wsrec.store._lock import SessionLock, is_locked


def test_lock_is_exclusive_and_visible_to_readers(tmp_path):
    assert not is_locked(tmp_path)
    lock = SessionLock(tmp_path)
    assert is_locked(tmp_path)
    with pytest.raises(SessionBusy):
        SessionLock(tmp_path)
    lock.release()
    assert not is_locked(tmp_path)


def test_lock_of_a_dead_process_is_free(tmp_path):
    code = (f"import os; from wsrec.store._lock import SessionLock; "
            f"SessionLock({str(tmp_path)!r}); os._exit(0)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    assert (tmp_path / "session.lock").exists() and not is_locked(tmp_path)
