"""Node names as reviewers read them: compressed into patterns, and summed up by scope."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from reconciler.compile import names


def _ranges(numbers: list[int], width: int) -> str:
    parts: list[str] = []
    start = prev = numbers[0]
    for number in [*numbers[1:], None]:
        if number is not None and number == prev + 1:
            prev = number
            continue
        first, last = f"{start:0{width}d}", f"{prev:0{width}d}"
        parts.append(first if start == prev else f"{first}-{last}")
        if number is not None:
            start = prev = number
    return ",".join(parts)


def _braces(values: list[str]) -> str:
    return values[0] if len(values) == 1 else "{" + ",".join(values) + "}"


def compress_names(node_names: Iterable[str]) -> list[str]:
    """Node names as a few patterns: `proxy-[01-40].tickets.{chi1,chi2}.sa`."""
    numbers: dict[tuple[str, str, str, str, int], list[int]] = defaultdict(list)
    odd: list[str] = []
    for fqdn in node_names:
        try:
            n = names.parse(fqdn)
        except names.NodeNameError:
            odd.append(fqdn)
            continue
        numbers[(n.cls, n.product, n.cluster, n.domain, n.width)].append(n.number)
    hosts: dict[tuple[str, str, str], list[str]] = defaultdict(list)  # (host, product, domain)
    for (cls, product, cluster, domain, width), found in sorted(numbers.items()):
        found.sort()
        if len(found) == 1:
            host = f"{cls}-{found[0]:0{width}d}"
        else:
            host = f"{cls}-[{_ranges(found, width)}]"
        hosts[(host, product, domain)].append(cluster)
    by_product: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for (host, product, domain), clusters in hosts.items():
        by_product[(host, _braces(clusters), domain)].append(product)
    patterns = [f"{host}.{_braces(products)}.{clusters}.{domain}"
                for (host, clusters, domain), products in by_product.items()]
    return sorted(patterns) + sorted(odd)


def describe_scope(node_names: Iterable[str], all_clusters: Iterable[str]) -> str:
    """Classes and clusters of some nodes: `proxy, all clusters` or `proxy + app, cluster chi1`."""
    classes: list[str] = []
    clusters: set[str] = set()
    for fqdn in node_names:
        try:
            n = names.parse(fqdn)
        except names.NodeNameError:
            continue
        if n.cls not in classes:
            classes.append(n.cls)
        clusters.add(n.cluster)
    if not classes:
        return "no nodes"
    every = set(all_clusters)
    if clusters == every and len(every) > 1:
        where = "all clusters"
    elif len(clusters) == 1:
        where = f"cluster {next(iter(clusters))}"
    else:
        where = "clusters " + " + ".join(sorted(clusters))
    return f"{' + '.join(sorted(classes))}, {where}"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
