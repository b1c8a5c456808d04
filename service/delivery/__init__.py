"""Delivery of dispatched work orders to departments (RabbitMQ, signed webhooks) and the
dead-letter list. `service.py` holds the plain functions the API and the tasks call;
`rabbitmq.py` and `webhook.py` are the transports; `errors.py` says what may be retried.
"""
