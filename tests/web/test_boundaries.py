"""The web app imports `shared` only (never torch, batch_jobs, local or lambdas), so it runs in
a Lambda and over any deployment's ports."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_app_and_its_lambda_loads_no_torch_nor_other_layers():
    code = (
        "import sys, web.app, web.data, web.auth, lambdas.web\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'torchvision', 'batch_jobs', 'local', 'sklearn'))\n"
        "lambdas = sorted(m for m in sys.modules if m.startswith('lambdas.') "
        "and m not in ('lambdas.web', 'lambdas.wiring'))\n"
        "print(bad + lambdas)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
