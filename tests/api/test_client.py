"""End to end against a real `linewatch serve` process: the Python client over HTTP, the live event
stream over WebSocket and `linewatch inspect` from the command line."""

import datetime as dt
import json
import re
import time
from pathlib import Path

import pytest
from websockets.sync.client import connect

from linewatch.client import Client, ClientError

ADMIN_PASSWORD = "admin-password-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory, linewatch_processes):
    """The URL of a `linewatch serve` process on a fresh data dir with one admin user."""
    root = tmp_path_factory.mktemp("server")
    data = root / "data"
    linewatch_processes.create_admin(data, ADMIN_PASSWORD)
    with linewatch_processes() as procs:
        url, _ = procs.serve(root / "server.log", data_dir=data)
        yield url


def _events(ws, want: set[int], timeout: float = 30) -> dict[int, dict]:
    """Inspection events from the stream until all ids in ``want`` came (job events are skipped)."""
    got: dict[int, dict] = {}
    deadline = time.monotonic() + timeout
    while not want <= got.keys():
        msg = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        assert msg["type"] != "dropped", msg
        if msg["type"] == "inspection":
            got[msg["inspection"]["id"]] = msg["inspection"]
    return got


def test_end_to_end(server, synthetic, tmp_path, linewatch_processes):
    with Client.login(server, "admin", ADMIN_PASSWORD) as lw:
        station = lw.create_station("cam1")
        assert station["name"] == "cam1" and station["active_model_id"] is None
        assert [s["name"] for s in lw.stations()] == ["cam1"]

        ds = lw.create_dataset("washers")
        good = sorted((synthetic / "train" / "good").iterdir())[:12]
        up = lw.upload_images(ds["id"], good)
        assert up["added"] == 12 and up["images"] == 12 and not up["skipped"]

        job = lw.train(ds["id"], image_size=64)
        assert job["status"] in ("queued", "running")
        done = lw.wait_for_job(job["id"], timeout=300, poll=0.2)
        assert done["status"] == "succeeded" and done["progress"] == 1.0
        model_id = done["result"]["model_id"]
        assert lw.activate(model_id, "cam1")["active_model_id"] == model_id
        models = {m["id"]: m for m in lw.models()}
        assert models[model_id]["status"] == "ready" and models[model_id]["stations"] == ["cam1"]
        # thresholds at another rate, from the scores the version keeps: a new version, the station's stays
        calibrated = lw.wait_for_job(lw.calibrate(model_id, false_alarm_rate=0.2)["id"], timeout=120, poll=0.2)
        new = {m["id"]: m for m in lw.models()}[calibrated["result"]["model_id"]]
        assert new["metrics"]["calibration"]["after"]["false_alarm_rate"] == 0.2 and new["stations"] == []
        assert new["threshold"] < models[model_id]["threshold"]

        key = lw.create_api_key("camera-1", "operator")["key"]
        spot = synthetic / "test" / "spot" / "000.png"
        fine = synthetic / "test" / "good" / "000.png"

        ws_url = server.replace("http://", "ws://") + f"/api/v1/events?token={lw.token}"
        with connect(ws_url, open_timeout=10) as ws:
            hello = json.loads(ws.recv(timeout=10))
            assert hello == {"type": "hello", "user": "admin", "role": "admin"}

            run = linewatch_processes.cli(
                "inspect", "--server", server, "--station", "cam1", "--api-key", key, "--json", str(spot), str(fine)
            )
            assert run.returncode == 0, run.stderr
            lines = [json.loads(x) for x in run.stdout.splitlines()]
            assert [x["path"] for x in lines] == [str(spot), str(fine)]
            assert [x["filename"] for x in lines] == ["000.png", "000.png"]
            assert all(x["station"] == "cam1" and x["model_id"] == model_id for x in lines)
            assert all(x["verdict"] in ("good", "anomalous") for x in lines)
            assert lines[0]["score"] > lines[1]["score"]
            ids = [x["id"] for x in lines]

            events = _events(ws, set(ids))
        for rec in lines:
            assert events[rec["id"]]["score"] == rec["score"]
            assert events[rec["id"]]["verdict"] == rec["verdict"]

        first = lw.inspection(ids[0])
        assert first["station"] == "cam1" and first["reviewed"] is False
        assert lw.image(ids[0]) == spot.read_bytes()
        assert lw.heatmap(ids[0])[:8] == b"\x89PNG\r\n\x1a\n"

        review = lw.review(ids[0], "anomalous", defect_type="spot", note="confirmed")
        assert review["inspection_id"] == ids[0] and review["defect_type"] == "spot"
        assert [x["id"] for x in lw.inspections(reviewed=False)["items"]] == [ids[1]]
        assert lw.inspection(ids[0])["reviewed"] is True
        # the drift watch: one part counts (the other was reviewed as defective), too few to compare yet
        watch = lw.drift("cam1", last=100)
        assert watch["level"] == "unknown" and watch["recent"] == 1 and "too few" in watch["reason"]
        assert lw.drift_history("cam1") == []
        # a recalibration on the station's parts of the last hour: one good part is not enough
        with pytest.raises(ClientError) as refused:
            lw.calibrate(model_id, station="cam1", since=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
        assert refused.value.status_code == 409 and "station 'cam1' inspected 1 parts" in str(refused.value)
        page = lw.inspections(station="cam1", limit=1)
        assert len(page["items"]) == 1 and page["next_cursor"] is not None
        assert [x["id"] for x in lw.iter_inspections(station="cam1", limit=1)] == sorted(ids, reverse=True)

        # the API key from the environment, a folder expanded, the table output
        env = {**linewatch_processes.env(), "LINEWATCH_API_KEY": key}
        folder = tmp_path / "shots"
        folder.mkdir()
        (folder / "a.png").write_bytes(fine.read_bytes())
        table = linewatch_processes.cli("inspect", "--server", server, "--station", "cam1", str(folder), env=env)
        assert table.returncode == 0, table.stderr
        assert "a.png" in table.stdout and "verdict" in table.stdout

        # a file the service refuses: the others of its upload are sent again alone and stored, it is named
        (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
        (folder / "c.png").write_bytes(spot.read_bytes())
        before = len(list(lw.iter_inspections(station="cam1")))
        mixed = linewatch_processes.cli(
            "inspect", "--server", server, "--station", "cam1", "--json", str(folder), env=env
        )
        assert mixed.returncode == 2 and "Traceback" not in mixed.stderr
        assert [Path(json.loads(x)["path"]).name for x in mixed.stdout.splitlines()] == ["a.png", "c.png"]
        assert "b.png" in mixed.stderr and "1 of 3 images could not be read" in mixed.stderr
        assert len(list(lw.iter_inspections(station="cam1"))) == before + 2  # each stored once

        with pytest.raises(ClientError) as e:
            lw.inspect("no-such-station", fine)
        assert e.value.status_code == 404 and "no-such-station" in e.value.detail


def test_errors(server):
    with pytest.raises(ClientError) as e:
        Client.login(server, "admin", "wrong password")
    assert e.value.status_code == 401
    assert e.value.detail == "wrong user name or password"

    with Client(server, api_key="lw_nonsense") as lw, pytest.raises(ClientError) as e:
        lw.stations()
    assert e.value.status_code == 401

    with Client(server) as lw, pytest.raises(ClientError) as e:
        lw.job(999)
    assert e.value.status_code == 401  # authentication comes before lookup


def test_a_url_that_is_no_url_is_a_client_error():
    for url in ("http://[::1", "ftp://host", "host:8000"):
        with pytest.raises(ClientError, match="invalid server URL"):
            Client(url, api_key="k")


def test_connection_refused(linewatch_processes):
    url = f"http://127.0.0.1:{linewatch_processes.free_port()}"
    with Client(url, api_key="x") as lw, pytest.raises(ClientError) as e:
        lw.stations()
    assert e.value.status_code is None
    assert f"cannot reach linewatch at {url}" in str(e.value)
    with pytest.raises(ClientError, match="cannot reach linewatch"):
        Client.login(url, "admin", "pw")


def test_cli_inspect_user_errors(synthetic, linewatch_processes):
    image = str(synthetic / "test" / "good" / "000.png")
    url = f"http://127.0.0.1:{linewatch_processes.free_port()}"
    run = linewatch_processes.cli("inspect", "--server", url, "--station", "cam1", "--api-key", "k", image)
    assert run.returncode == 2
    assert "cannot reach linewatch" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and run.stdout == ""

    run = linewatch_processes.cli("inspect", "--server", url, "--api-key", "k", image)
    assert run.returncode == 2 and "--station is required" in run.stderr and "Traceback" not in run.stderr

    run = linewatch_processes.cli("inspect", "--server", url, "--station", "cam1", image)
    assert run.returncode == 2 and "--api-key" in run.stderr

    run = linewatch_processes.cli(
        "inspect", "--server", url, "--station", "cam1", "--api-key", "k", str(Path(image).with_name("nope.png"))
    )
    assert run.returncode == 2 and "path not found" in run.stderr


def test_a_silent_server_is_reported_with_the_whole_wait():
    """A server that accepts the connection and never answers: each try waits ``timeout``, and the error says how
    many tries over how long, not only one try's limit."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with Client(url, api_key="k", timeout=0.3) as lw:
            with pytest.raises(ClientError) as e:
                lw.inspect("cam1", b"not an image", retries=2, retry_wait=0.05)
            assert e.value.status_code is None
            assert re.search(r"did not answer within 0\.3 s \(sent 3 times over \d+ s\)", str(e.value)), str(e.value)
            with pytest.raises(ClientError) as e:
                lw.inspect("cam1", b"not an image", retries=0)
            assert str(e.value).endswith("did not answer within 0.3 s")
