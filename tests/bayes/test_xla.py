"""The jaxlib 0.10 CPU deadlock workaround (``bayes._xla``)."""

from __future__ import annotations

import os
import subprocess
import sys

from bayes import _xla


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", _xla._ENV_KEEP)}
    return {**env, **extra}


def _flags_after_import(env: dict[str, str]) -> str:
    code = "import os, bayes; print(os.environ.get('XLA_FLAGS', ''))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_adds_the_flag_and_keeps_the_users_choice():
    assert _flags_after_import(_env()) == _xla.FLAG
    mine = "--xla_force_host_platform_device_count=2"
    assert _flags_after_import(_env(XLA_FLAGS=mine)) == f"{mine} {_xla.FLAG}"
    chosen = "--xla_cpu_enable_concurrency_optimized_scheduler=true"
    assert _flags_after_import(_env(XLA_FLAGS=chosen)) == chosen
    assert _flags_after_import(_env(BAYES_KEEP_XLA_SCHEDULER="1")) == ""
