"""Neuron models: the nonlinearities and (later) stateful spiking neurons of a network.

Each neuron type is a pure function of its input (and state) plus a thin module; its recipe
layer type is registered next to it.
"""
