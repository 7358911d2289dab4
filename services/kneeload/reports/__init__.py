"""HTML reports with PNG charts (team report, demo): shared plumbing in :mod:`.html`
(autoescaped Jinja templates) and :mod:`.charts` (matplotlib, PNG as data URIs), the team
report's data and page in :mod:`.team`, the command in :mod:`.cli`."""
