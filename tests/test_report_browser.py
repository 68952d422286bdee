"""The HTML report in a real browser: headless Chromium, driven through the DevTools protocol,
renders it and takes a screenshot; its DOM holds every section and a chart; the page's network
log holds nothing but the page itself."""

import pytest

from browser import DevTools, install_chromium
from operations.report import build_report, render
from test_report import SECTIONS, SEQ2SEQ_FAMILY, seq2seq_record

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    try:
        return install_chromium()
    except RuntimeError as error:
        pytest.skip(str(error))


def test_report_opens_in_chromium_with_every_section_a_chart_and_no_network_request(browser, tmp_path):
    eval_texts = [f"a fine film number {i}, with a long and winding plot" for i in range(40, 49)] + ["  "]
    page = tmp_path / "report.html"
    page.write_text(render(build_report(seq2seq_record(eval_texts), []), "html", "textflow report"), encoding="utf-8")
    devtools = DevTools(browser, str(tmp_path / "profile"))
    try:
        devtools.call("Network.enable")
        devtools.open(page.as_uri())
        found = devtools.evaluate("""({
            sections: [...document.querySelectorAll('section > h2')].map(h => h.textContent),
            charts: document.querySelectorAll('figure.chart svg rect').length,
            curveLines: [...document.querySelectorAll('figure.curve svg polyline')]
                .filter(l => l.getBoundingClientRect().width > 0).length,
            heatmapCells: [...document.querySelectorAll('figure.attention svg rect')]
                .filter(r => r.getBoundingClientRect().width > 0).length,
            blocked: [...document.querySelectorAll('td.BLOCK')].map(td => td.nextElementSibling.textContent),
        })""")
        screenshot = devtools.screenshot()
    finally:
        devtools.close()
    (tmp_path / "report.png").write_bytes(screenshot)
    assert screenshot[:8] == b"\x89PNG\r\n\x1a\n" and len(screenshot) > 10_000
    seq2seq_section = f"Model: {SEQ2SEQ_FAMILY['model_name']} ({SEQ2SEQ_FAMILY['family']})"
    assert found["sections"] == SECTIONS[:-1] + [seq2seq_section, SECTIONS[-1]]
    assert found["charts"] >= 3 and found["blocked"] == ["empty_text"]
    assert found["curveLines"] == 2  # the training curve: loss and eval loss
    assert found["heatmapCells"] == 6 * 5  # the attention heatmap renders, a cell per output x source piece
    requested = [e["params"]["request"]["url"] for e in devtools.events if e.get("method") == "Network.requestWillBeSent"]
    assert requested == [page.as_uri()], requested  # the page itself, nothing else
