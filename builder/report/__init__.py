"""`build report`: what a stack's builds, smoke runs and locks say, as one self-contained HTML page
and a Markdown summary (what CI puts in its job summary), with plots.

`inputs.py` reads what the other commands wrote (the IO edge), `figures.py` turns it into figures
and captions (pure), `plots.py` draws them (matplotlib, Agg, PNG) and `page.py` writes the page."""
