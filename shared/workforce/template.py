"""The worker's page: one crowd-html-elements `crowd-image-classifier` form for MTurk and A2I.

Both show the same page. MTurk gets literal HTML with the task's values escaped into it (wrapped
in an HTMLQuestion); A2I gets one Liquid template for every task (the flow definition's worker
task template) whose `{{ task.input.* }}` variables are filled from the human loop's input,
built by `a2i_input_content`. The answer comes back as `{"label": {"label": <category>}}`
(the widget's name, then the chosen category).
"""

from __future__ import annotations

import json
from html import escape

from shared.tasks import RelabelTask

CROWD_ELEMENTS_JS = "https://assets.crowd.aws/crowd-html-elements.js"
WIDGET_NAME = "label"  # key of the answer object
HTML_QUESTION_NS = (
    "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/HTMLQuestion.xsd"
)
MAX_QUESTION_BYTES = 65_535  # MTurk's limit on the Question XML

_PAGE = """<!DOCTYPE html>
<html>
<head><meta charset="utf-8"><script src="{js}"></script></head>
<body>
<crowd-form>
  <crowd-image-classifier
      name="{name}"
      src="{src}"
      categories="{categories}"
      header="{header}">
    <short-instructions>
      <p>Look at the dress in the photo and choose its {facet}.</p>
      <p>If none fits exactly, choose the closest one.</p>
    </short-instructions>
    <full-instructions header="How to answer">
      <p>Judge the dress only: not the person, the background or other clothes.</p>
      <p>Choose the {facet} you see. If the photo does not show it clearly, choose the
      closest one; there is no wrong answer for an unclear photo.</p>
    </full-instructions>
  </crowd-image-classifier>
</crowd-form>
</body>
</html>
"""


def header_for(facet: str) -> str:
    """The question above the image."""
    return f"Which {facet} does this dress have?"


def mturk_html(task: RelabelTask, image_url: str) -> str:
    """The page for one task, values escaped for HTML attributes and text."""
    return _PAGE.format(
        js=CROWD_ELEMENTS_JS,
        name=WIDGET_NAME,
        src=escape(image_url, quote=True),
        categories=escape(json.dumps(list(task.allowed)), quote=True),
        header=escape(header_for(task.facet), quote=True),
        facet=escape(task.facet),
    )


def html_question(html: str, frame_height: int = 0) -> str:
    """An MTurk HTMLQuestion holding `html` in CDATA. FrameHeight 0: the frame fits the
    worker's window. Raises ValueError past MTurk's 64 KB limit."""
    cdata = html.replace("]]>", "]]]]><![CDATA[>")  # "]]>" would end the CDATA section early
    question = (
        f'<HTMLQuestion xmlns="{HTML_QUESTION_NS}">'
        f"<HTMLContent><![CDATA[{cdata}]]></HTMLContent>"
        f"<FrameHeight>{int(frame_height)}</FrameHeight>"
        "</HTMLQuestion>"
    )
    if len(question.encode()) > MAX_QUESTION_BYTES:
        raise ValueError("the HTMLQuestion is over MTurk's 64 KB limit; shorten the image URL")
    return question


def a2i_worker_template() -> str:
    """The Liquid worker task template of the A2I flow definition (one for every facet).
    `grant_read_access` turns the `s3://` image URI into a short-lived HTTPS URL each time a
    worker opens the task, so a task waiting for days never shows an expired link."""
    return _PAGE.format(
        js=CROWD_ELEMENTS_JS,
        name=WIDGET_NAME,
        src="{{ task.input.taskObject | grant_read_access }}",
        categories="{{ task.input.labels | to_json | escape }}",
        header="{{ task.input.header | escape }}",
        facet="{{ task.input.facet | escape }}",
    )


def answer_label(content: object) -> object:
    """The category chosen in one crowd-form answer object, `{"label": {"label": <category>}}`
    (A2I's `answerContent`; one element of MTurk's `taskAnswers` list). ValueError for any
    other shape. The category is still untrusted: check it against the task's labels."""
    widget = content.get(WIDGET_NAME) if isinstance(content, dict) else None
    if not isinstance(widget, dict) or "label" not in widget:
        raise ValueError(f'expected {{"{WIDGET_NAME}": {{"label": ...}}}}, got {content!r:.80}')
    return widget["label"]


def a2i_input_content(task: RelabelTask, image_uri: str) -> str:
    """The human loop's `InputContent`: the values `a2i_worker_template` reads."""
    return json.dumps(
        {
            "taskObject": image_uri,
            "labels": list(task.allowed),
            "facet": task.facet,
            "header": header_for(task.facet),
            "taskId": task.task_id,
        }
    )
