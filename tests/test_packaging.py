"""`pip install .` (not editable) gives a package that twistd finds and that carries its SQL."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_plain_install_is_found_by_twistd(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "--target", str(target), str(ROOT)],
                   check=True, capture_output=True, cwd=tmp_path)
    assert (target / "twisted" / "plugins" / "wevoip_plugin.py").exists()
    assert not (target / "twisted" / "plugins" / "__init__.py").exists()
    assert (target / "wevoip" / "store" / "migrations" / "0001_tenancy.sql").exists()
    assert (target / "wevoip_plugins" / "dialplan_presets.py").exists()
    missing = [str(path.relative_to(ROOT)) for path in (ROOT / "wevoip").rglob("*.py")
               if not (target / path.relative_to(ROOT)).exists()]
    assert missing == [], "add these packages to [tool.setuptools] packages in pyproject.toml"
    # -S keeps the checkout's editable path out: only the installed copy and the
    # dependencies are importable, and the current folder is not the checkout.
    env = {"PATH": os.environ["PATH"],
           "PYTHONPATH": os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]])}
    found = subprocess.run(
        [sys.executable, "-S", "-c",
         "import wevoip, sys; from twisted.plugin import getPlugins; "
         "from twisted.application.service import IServiceMaker; "
         "names = [p.tapname for p in getPlugins(IServiceMaker)]; print(wevoip.__file__, names); "
         "from wevoip.plugins import discover; from wevoip.interfaces import IDialplanPreset; "
         "print(sorted(discover(IDialplanPreset)))"],
        check=True, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert str(target / "wevoip" / "__init__.py") in found.stdout
    assert "'wevoip'" in found.stdout
    assert "['br', 'de', 'gb', 'us']" in found.stdout
    usage = subprocess.run([sys.executable, "-S", "-m", "twisted", "wevoip", "--help"],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
    assert "--data-dir" in usage.stdout and "--dsn" in usage.stdout
