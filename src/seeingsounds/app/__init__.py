"""The web app: :mod:`seeingsounds.app.service` (what a request does, over the engine; no Gradio) and
:mod:`seeingsounds.app.ui` (the Gradio page: :func:`~seeingsounds.app.ui.build_app`,
:func:`~seeingsounds.app.ui.launch_app`). ``seeingsounds serve`` is the command."""
