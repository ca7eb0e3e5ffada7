"""One thin file per framework, translating its events into ``runstack`` core calls."""
