"""One keyword's newest papers: its arXiv query, the fetch, and the entries turned into Papers.

The query is the keyword's own, or its name as a phrase in title or abstract;
the answer is filtered by category, duplicates folded, and a sudden empty
answer for a keyword that had papers is not trusted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import arxiv

from ..config import ArxivSettings, Keyword
from ..papers import Paper, paper_from_result
from .client import ArxivClient, FetchError

log = logging.getLogger(__name__)


def phrase(text: str) -> str:
    """A quoted arXiv phrase. arXiv has no escape for '"' inside a phrase, so quotes
    become spaces: the search engine splits on punctuation anyway."""
    return '"' + " ".join(text.replace('"', " ").split()) + '"'


def _anywhere(text: str) -> str:
    quoted = phrase(text)
    return f"ti:{quoted} OR abs:{quoted}"


def build_query(keyword: Keyword) -> str:
    """The search_query for a keyword: its raw query, or title/abstract phrase match,
    minus its excluded terms."""
    query = keyword.query or _anywhere(keyword.name)
    if keyword.exclude:
        excluded = " OR ".join(_anywhere(term) for term in keyword.exclude)
        query = f"({query}) ANDNOT ({excluded})"
    return query


@dataclass(frozen=True)
class Fetched:
    keyword: str
    papers: tuple[Paper, ...]
    filtered: int  # dropped by the category filter


def fetch_keyword(
    client: ArxivClient,
    keyword: Keyword,
    settings: ArxivSettings,
    had_papers: bool,
) -> Fetched:
    """The newest papers for one keyword, or FetchError saying why not.

    A keyword that had papers before and now returns none is asked once more:
    arXiv sometimes answers a valid query with an empty feed, and trusting that
    would look like "nothing new" forever.
    """
    search = arxiv.Search(
        query=build_query(keyword),
        max_results=settings.max_results,
        sort_by=arxiv.SortCriterion.LastUpdatedDate,
        sort_order=arxiv.SortOrder.Descending,
    )
    results = list(client.results(search))
    if not results and had_papers:
        log.info(
            "arXiv: %s returned no papers although it had some before; asking again", keyword.name
        )
        results = list(client.results(search))
        if not results:
            raise FetchError("no results although the keyword had papers before (asked twice)")

    allowed = keyword.categories if keyword.categories is not None else settings.categories
    by_id: dict[str, Paper] = {}
    filtered = unreadable = 0
    for result in results:
        try:
            paper = paper_from_result(result)
        except Exception as err:  # BadPaper, or anything else one entry can hold
            log.warning("arXiv: %s: skipped an entry: %.200s", keyword.name, err)
            unreadable += 1
            continue
        if not paper.matches_categories(allowed):
            filtered += 1
            continue
        known = by_id.get(paper.id)
        if known is None or paper.version > known.version:
            by_id[paper.id] = paper
    if had_papers and results and unreadable == len(results):
        # As with an empty answer: nothing usable is not trusted to mean "nothing new".
        raise FetchError(f"none of the {len(results)} entries arXiv sent could be read")
    return Fetched(keyword=keyword.name, papers=tuple(by_id.values()), filtered=filtered)
