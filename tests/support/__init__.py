"""Infrastructure that tests start for themselves, never the shared brokers.

- :mod:`tests.support.rabbitmq`: private RabbitMQ nodes and clusters (own node name, ports,
  data and log directories, Erlang cookie and epmd), started and killed by their pid.
- :mod:`tests.support.mosquitto`: a private Mosquitto.
- :mod:`tests.support.fixtures`: the pytest fixtures over them (loaded for every test
  directory by ``tests/conftest.py``).

The shared RabbitMQ on 127.0.0.1:5672 and Mosquitto on 1883 serve every test run on the
machine at once; a test that stops, kills or reconfigures a broker uses one of these.
"""
