"""portal_devstack.nginx.build_ui: the served tree nginx's routes expect (pages, admin pages, assets)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from portal_devstack.nginx import ADMIN_PAGES, UI_PAGES, build_ui

REPO = Path(__file__).resolve().parents[3]


def _ui_copy(target: Path, *, admin: bool) -> Path:
    shutil.copytree(REPO / "ui", target, ignore=shutil.ignore_patterns("admin"))
    if admin:
        (target / "admin").mkdir()
        for page in ADMIN_PAGES:
            (target / "admin" / f"{page}.html").write_text(f'<link href="{{{{ASSETS}}}}/css/portal.css">{page}')
    return target


def test_pages_admin_pages_and_the_403_page_are_built_with_their_assets(tmp_path: Path) -> None:
    version = build_ui(_ui_copy(tmp_path / "ui", admin=True), tmp_path / "html")
    portal = tmp_path / "html" / "portal"
    assert re.fullmatch(r"[0-9a-f]{12}", version)
    assert (portal / "assets" / version / "css" / "portal.css").is_file()
    assert "forbidden" in UI_PAGES
    for page in [*UI_PAGES, *(f"admin/{p}" for p in ADMIN_PAGES)]:
        text = (portal / f"{page}.html").read_text()
        assert "{{ASSETS}}" not in text and f"/portal/assets/{version}/css/portal.css" in text, page
    assert {p.name for p in (portal / "admin").iterdir()} == {"index.html", "client.html", "user.html"}


def test_a_ui_without_admin_pages_builds_without_them(tmp_path: Path) -> None:
    build_ui(_ui_copy(tmp_path / "ui", admin=False), tmp_path / "html")
    assert not (tmp_path / "html" / "portal" / "admin").exists()
    assert (tmp_path / "html" / "portal" / "forbidden.html").is_file()
