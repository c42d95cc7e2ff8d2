"""Rain: complaint-driven training-data debugging (Wu, Weimer, Madden. Complaint-driven Training
Data Debugging for Query 2.0. SIGMOD 2020)."""
from .complaints import AggregateComplaint, PointComplaint
from .rain import Rain

__all__ = ["Rain", "PointComplaint", "AggregateComplaint"]
