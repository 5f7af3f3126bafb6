"""docker-compose.yml: the team deployment the README describes is consistent with the code."""
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_compose_runs_two_app_servers_on_one_postgresql_library_and_a_ray_cluster():
    d = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    s = d["services"]
    assert s["db"]["image"].startswith("postgres:")
    apps = [k for k in s if k.startswith("app-")]
    assert len(apps) >= 2 and len({s[k]["ports"][0].split(":")[0] for k in apps}) == len(apps)
    for k in apps + ["ray-head", "ray-worker"]:
        env = s[k]["environment"]
        assert env["ASPL_DB"].startswith("postgresql://") and env["ASPL_DB"].endswith("@db:5432/aspl")
        assert env["ASPL_DATA"] == "/data" and "aspl-data:/data" in s[k]["volumes"]
        assert "./photos:/photos:ro" in s[k]["volumes"]  # the Ray workers open the paths the driver lists
        assert s[k]["build"] == "." and s[k]["image"] == "aspl:latest"
        assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN"].startswith("${RAY_AUTH_TOKEN:?")
    assert all(s[k]["command"][:3] == [".venv/bin/streamlit", "run", "app.py"] for k in apps)
    assert "--head" in s["ray-head"]["command"] and "--address=ray-head:6379" in s["ray-worker"]["command"]
    readme = (REPO / "README.md").read_text()
    command = """docker compose exec ray-head sh -c '.venv/bin/python -m aspl import /photos --db "$ASPL_DB" --ray auto'"""
    assert command in readme
