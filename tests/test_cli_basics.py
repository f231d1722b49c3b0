import subprocess
import sys

from crlkit.cli import main
from crlkit.errors import CrlkitError
from crlkit.registry import Registry


def test_registry_error_names_field_and_choices():
    reg = Registry("model")
    reg.register("beta_vae", object())
    reg.register("factor_vae", object())
    try:
        reg.get("beta_vea")
    except CrlkitError as e:
        msg = str(e)
    else:
        raise AssertionError("no error")
    assert "model" in msg and "beta_vae" in msg and "factor_vae" in msg and "did you mean 'beta_vae'" in msg


def test_cli_without_command_exits_nonzero(capsys):
    assert main([]) == 2


def test_cli_unknown_command_has_no_traceback():
    r = subprocess.run([sys.executable, "-m", "crlkit", "no-such-command"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "invalid choice" in r.stderr
