"""One visual language for every view (DOT, HTML, the playground): the source material's
colours, and one colour per thread for timelines."""

# Variables green, operations teal, outputs purple (the source material's pictures);
# parameters a darker green, since they are variables the optimizer owns; backward nodes
# orange, so the gradient graph stands apart from the forward one it reads.
COLORS = {
    "variable": "#43a047",
    "parameter": "#2e7d32",
    "op": "#00897b",
    "output": "#8e24aa",
    "backward": "#ef6c00",
}

# Thread i of a timeline is THREAD_COLORS[i % len(THREAD_COLORS)] in every view.
THREAD_COLORS = [
    "#1e88e5", "#e53935", "#fdd835", "#6d4c41", "#d81b60", "#3949ab", "#7cb342", "#00acc1",
]


def node_color(node):
    """The fill colour of a node of a graph description (see ``dagrad.viz``)."""
    if node["pass"] == "backward":
        return COLORS["backward"]
    return COLORS[node["kind"]]
