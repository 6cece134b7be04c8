"""Deployment artefacts generated from the code: RabbitMQ definitions, Mosquitto ACL.

Why generated: the queues, bindings and limits the services declare live in
:mod:`events.topology`; a hand-written ``definitions.json`` would drift from them the first
time someone adds a binding, and the broker would then refuse the service's declaration
(``PRECONDITION_FAILED``) or, worse, route nothing. ``deploy/`` holds the generated files
and a test fails when they differ from what the generator writes now.
"""
