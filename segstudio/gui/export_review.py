"""The export dialog's "accepted" box. With review on, a done image is only the annotator's word
that it is right; a reviewer's accept makes it finished work. So the dialog then offers "accepted"
beside the statuses and ticks it instead of "done", as `segstudio export` does; "accepted" is the
selector of core.review_filter (done and accepted), which the exporters take among the statuses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from segstudio.core.records import DONE, STATUSES
from segstudio.core.review_filter import ACCEPTED, default_export_statuses, left_out_unaccepted, select_images
from segstudio.io.common import counted

if TYPE_CHECKING:
    from segstudio.core.store import Store

__all__ = ["ACCEPTED", "ReviewChoice"]


class ReviewChoice:
    """What review changes in the export dialog, read from the store once as the dialog opens."""

    def __init__(self, store: Store) -> None:
        self.on = store.review_enabled()
        self.defaults = default_export_statuses(store)
        self.accepted = self.accepted_unreadable = self.unaccepted = 0
        if self.on:
            recs = select_images(store, (ACCEPTED,))
            # an unreadable accepted image is counted apart, as the statuses' unreadable ones are
            self.accepted_unreadable = sum(1 for r in recs if r.error)
            self.accepted = len(recs) - self.accepted_unreadable
            self.unaccepted = left_out_unaccepted(store, (ACCEPTED,))

    def boxes(self) -> list[str]:
        """The dialog's boxes in order: "accepted" just before "done" when review is on."""
        if not self.on:
            return list(STATUSES)
        i = STATUSES.index(DONE)
        return [*STATUSES[:i], ACCEPTED, *STATUSES[i:]]

    def counted(self, chosen: Sequence[str]) -> list[str]:
        """The ticked boxes whose images add to the total: accepted images are done ones, so with
        both ticked only "done" counts (each image once)."""
        return [s for s in chosen if not (s == ACCEPTED and DONE in chosen)]

    def left_out(self, chosen: Sequence[str]) -> str:
        """A sentence for the summary: done images this choice leaves out for want of an accept."""
        n = self.unaccepted if ACCEPTED in chosen and DONE not in chosen else 0
        if not n:
            return ""
        return (f"{counted(n, 'done image')} {'is' if n == 1 else 'are'} left out: not accepted by a reviewer yet "
                "(tick done to export them)")
