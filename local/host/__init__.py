"""A local stand-in for the Functions host, for machines without Azure Functions Core Tools.

It loads `function_app.app`, reads each registered function's own binding metadata and invokes
those same functions: the blob function once per new blob version seen in Azurite, the queue
function per message, the timer function when its schedule fires, each handed the argument the
host and the Python worker would build. Failed invocations are retried like the host does (up to
the poison thresholds of host.json). A trigger type it cannot run is refused at start-up, never
silently skipped. It is not a production host: no scale-out, receipts kept in memory only.

- bindings.py: discovery (registered_functions, discover, SUPPORTED_TRIGGERS) and the function descriptors
- arguments.py: what each function is handed (the blob SDK type, func.QueueMessage, func.TimerRequest)
- host_json.py: the options read from host.json (blob concurrency and poison threshold, queue options)
- host.py: LocalHost, one executor per trigger group (blob, queue, timer), the trigger loops and poison handling
"""
