"""Pages of the call list and of search results, counted only as far as anyone pages.

Counting every ended call in a user's scope, or every segment that matches a common word, costs more
than reading the page itself once there are a hundred thousand calls, and a scoped count costs several
times an unscoped one (performance.md, "Scoped access"). Nobody pages through thousands of results;
they narrow the search or the dates. So the count stops ten pages past the one shown, and the page
says "more than" when there is more ("More than 275 matches", "Page 1 of more than 11"): every page
is still reachable, Next by Next, and a count under the limit is exact.
"""

from __future__ import annotations

from functools import cached_property

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet

PAGES_COUNTED_AHEAD = 10
HIGHEST_PAGE = 1_000_000  # a page number past it is taken as this, so the count's LIMIT stays a bigint


class LimitedCountPaginator(Paginator):
    def __init__(self, object_list: QuerySet, per_page: int, requested_page: object) -> None:
        super().__init__(object_list, per_page)
        self.requested_page = requested_page
        self.count_limit = (_page_number(requested_page) + PAGES_COUNTED_AHEAD) * per_page

    @cached_property
    def rows_counted(self) -> int:
        # One row past the limit says whether there is more. Only the ids: no ordering to sort by, and
        # none of the page's annotations (Django keeps them in a sliced query's count).
        return self.object_list.order_by().values("pk")[: self.count_limit + 1].count()

    @cached_property
    def count(self) -> int:
        return min(self.rows_counted, self.count_limit)

    @property
    def more_than_counted(self) -> bool:
        return self.rows_counted > self.count_limit

    def requested(self) -> Page:
        return self.get_page(self.requested_page)


def _page_number(requested: object) -> int:
    try:
        return min(max(1, int(str(requested))), HIGHEST_PAGE)
    except ValueError:
        return 1
