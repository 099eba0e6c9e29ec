"""Imported by the engines' forkserver: the routing kernels compiled before any engine forks."""

from routing.warm import warm_up

warm_up()
