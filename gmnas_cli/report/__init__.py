"""Tables and plots across experiments in the layout of the paper's tables (``gmnas report``)."""
