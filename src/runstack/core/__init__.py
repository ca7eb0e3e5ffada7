"""The tracker's core: the run, its store, rank handling and the query API.

Imports no ML framework; numpy, pandas and pyarrow are imported only when history is read.
"""
