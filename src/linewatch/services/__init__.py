"""What the inspection service does, apart from HTTP: inspecting, searching, duplicates, training and other
jobs, events and their subscribers, statistics. Routes in ``linewatch.api`` parse, authorise and call these;
the CLI and the job workers call them too."""
