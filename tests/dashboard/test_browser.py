"""Headless Chromium (Debian's, driven by Playwright): an inspector sees a new alert arrive live over MQTT,
opens it, the clip plays, confirms it; a restaurant user sees only its alerts and answers one.
Screenshots go to test-artifacts/; with BK_UPDATE_DOCS_IMG=1 the README's two are also copied to docs/img/."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from brightkitchen.contract import encode, topic_for

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
    pytest.mark.parametrize("db_config", ["sqlite"], indirect=True),
]


def _kitchen_frame(t: int, w: int = 640, h: int = 360) -> np.ndarray:
    """A synthetic counter: a green board with a red piece of raw meat on it, a knife moving across."""
    import cv2

    img = np.full((h, w, 3), (200, 205, 210), np.uint8)
    cv2.rectangle(img, (0, int(h * 0.55)), (w, h), (150, 160, 170), -1)
    cv2.rectangle(img, (int(w * 0.2), int(h * 0.45)), (int(w * 0.6), int(h * 0.85)), (60, 170, 60), -1)
    cv2.ellipse(img, (int(w * 0.38), int(h * 0.63)), (50, 30), 10, 0, 360, (60, 50, 190), -1)
    x = int(w * 0.1 + t * 8) % w
    cv2.line(img, (x, int(h * 0.5)), (x + 90, int(h * 0.58)), (90, 90, 90), 6)
    return img


BOARD, MEAT = (0.2, 0.45, 0.6, 0.85), (0.3, 0.53, 0.46, 0.73)
DETECTIONS = [
    {"label": "board_green", "score": 0.91, "box": dict(zip(("x1", "y1", "x2", "y2"), BOARD, strict=True))},
    {"label": "raw_meat", "score": 0.87, "box": dict(zip(("x1", "y1", "x2", "y2"), MEAT, strict=True))},
]


def _clean_jpeg() -> bytes:
    import cv2

    return cv2.imencode(".jpg", _kitchen_frame(0), [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


def _snapshot_jpeg() -> bytes:
    """The edge's annotated snapshot: the frame with its detections drawn."""
    import cv2

    img = _kitchen_frame(0)
    h, w = img.shape[:2]
    for (x1, y1, x2, y2), label in ((BOARD, "board_green 0.91"), (MEAT, "raw_meat 0.87")):
        p1, p2 = (int(x1 * w), int(y1 * h)), (int(x2 * w), int(y2 * h))
        cv2.rectangle(img, p1, p2, (40, 40, 230), 2)
        cv2.putText(img, label, (p1[0], p1[1] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (40, 40, 230), 1)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


def _clip_mp4(frames: int = 45) -> bytes:
    """H.264 MP4 through PyAV, the format Chromium plays (see DESIGN.md)."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for t in range(frames):
            frame = av.VideoFrame.from_ndarray(_kitchen_frame(t)[:, :, ::-1].copy(), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


@pytest.fixture
def live_server(db_config, sessions, persister):
    """The real app under uvicorn on a free port (cookies stay Secure: Chromium keeps them on 127.0.0.1)."""
    import uvicorn

    from dashboard.web.app import create_app

    http = db_config.http.model_copy(update={"display_timezone": "Asia/Shanghai"})
    app = create_app(db_config.model_copy(update={"http": http}), sessions=sessions, store=persister.store)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield b
        b.close()


def _login(browser, base: str, user: str):
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    page.goto(f"{base}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", "secret-pw")
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    return page


def _shot(page, name: str, docs_name: str | None = None) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if docs_name and os.environ.get("BK_UPDATE_DOCS_IMG") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_IMG / docs_name)


def _publish(publisher, make_event, make_media, restaurant: str = "r-a", **kw) -> str:
    snap, clean, clip = _snapshot_jpeg(), _clean_jpeg(), _clip_mp4()
    media = [
        {
            "kind": "snapshot_clean",
            "content_type": "image/jpeg",
            "sha256": hashlib.sha256(clean).hexdigest(),
            "size_bytes": len(clean),
        },
        {
            "kind": "snapshot",
            "content_type": "image/jpeg",
            "sha256": hashlib.sha256(snap).hexdigest(),
            "size_bytes": len(snap),
        },
        {
            "kind": "clip",
            "content_type": "video/mp4",
            "sha256": hashlib.sha256(clip).hexdigest(),
            "size_bytes": len(clip),
        },
    ]
    ev = make_event(
        restaurant=restaurant,
        snapshot=None,
        media=media,
        rule_name="raw meat on green board",
        detections=DETECTIONS,
        **kw,
    )
    for msg in (
        ev,
        make_media(ev, snap),
        make_media(ev, clean, "snapshot_clean"),
        make_media(ev, clip, "clip", "video/mp4"),
    ):
        publisher.publish(topic_for(msg), encode(msg))
    return str(ev.event_id)


def test_inspector_reviews_a_live_alert(
    live_server, browser, start_worker, publisher, tenants, make_event, make_media, wait_until
) -> None:
    start_worker()
    older = _publish(publisher, make_event, make_media, severity="medium")
    _publish(publisher, make_event, make_media, restaurant="r-b")  # South: not this inspector's
    page = _login(browser, live_server, "insp-north")
    assert page.url.endswith("/queue")
    page.wait_for_selector(f'tr[data-id="{older}"]')
    page.wait_for_selector("#live-status.on")
    new = _publish(publisher, make_event, make_media)
    page.wait_for_selector(f'tr[data-id="{new}"]', timeout=15_000)  # arrived without a reload
    assert page.locator("tr.alert-row").count() == 2
    page.wait_for_function("[...document.querySelectorAll('img.thumb')].every(i => i.complete)")
    _shot(page, "review-queue", "review-queue.png")

    page.click(f'tr[data-id="{new}"] a')

    def clip_shown() -> bool:
        """The queue lists the alert once its event is stored; its clip, published last, may still be on its
        way (the page then says so): reload until it is there."""
        if page.locator("#clip").count():
            return True
        page.reload()
        return False

    wait_until(clip_shown, timeout_s=15, interval_s=0.5)
    page.eval_on_selector("#clip", "v => v.play()")
    page.wait_for_function(
        "() => { const v = document.querySelector('#clip'); return v.readyState === 4 && v.videoWidth > 0 }",
        timeout=15_000,
    )
    page.wait_for_function("() => document.querySelector('#snapshot').naturalWidth > 0")
    assert page.locator(".boxes .box").count() == 2  # boxes drawn by the dashboard over the clean frame
    page.eval_on_selector("#clip", "v => { v.pause(); v.currentTime = 1.0; }")
    time.sleep(0.3)
    _shot(page, "alert-page", "alert-page.png")
    with page.expect_navigation():
        page.keyboard.press("c")
    assert page.url.endswith(f"/alerts/{older}")  # moved on to the next unreviewed alert
    page.goto(f"{live_server}/alerts/{new}")
    assert page.locator("h1 .v-confirmed").count() == 1
    assert "confirmed by insp-north" in page.inner_text(".timeline")


def test_restaurant_sees_only_its_alerts_and_answers(
    live_server, browser, start_worker, publisher, tenants, make_event, make_media, tmp_path, wait_until
) -> None:
    start_worker()
    mine = _publish(publisher, make_event, make_media)
    theirs = _publish(publisher, make_event, make_media, restaurant="r-b")
    page = _login(browser, live_server, "rest-a")
    assert page.url.endswith("/portal")
    wait_until(lambda: page.reload() or page.locator(f'tr[data-id="{mine}"]').count() == 1, timeout_s=15)
    assert page.locator(f'tr[data-id="{theirs}"]').count() == 0
    page.click(f'tr[data-id="{mine}"] a')
    photo = tmp_path / "fixed.jpg"
    photo.write_bytes(_snapshot_jpeg())
    page.fill("textarea[name=note]", "Moved the meat to the red board and cleaned the green one.")
    page.set_input_files("input[name=photo]", str(photo))
    page.click("form.respond button[type=submit]")
    page.wait_for_selector(".history.response img.photo")
    page.wait_for_function("() => document.querySelector('.history.response img.photo').naturalWidth > 0")
    _shot(page, "restaurant-answer")
    assert page.goto(f"{live_server}/alerts/{theirs}").status == 404


def test_api_docs_render_offline(live_server, browser, tenants) -> None:
    page = browser.new_page()
    page.goto(f"{live_server}/docs")
    page.wait_for_selector(".swagger-ui .title", timeout=15_000)  # assets served by the dashboard itself
    assert "Bright Kitchen dashboard" in page.inner_text(".swagger-ui .title")
    assert page.locator(".opblock").count() > 10
