"""Moved: :mod:`seeingsounds.captions.caption_set` (the captions) and :mod:`seeingsounds.runs` (the run folder)."""
from seeingsounds.captions.caption_set import KINDS, CaptionEntry, CaptionSet, class_rows  # noqa: F401
from seeingsounds.runs import CAPTIONS_FILE, TARGETS_FILE, find_run_folder, load_caption_set, save_caption_set  # noqa: F401
