"""The real runtime: engines on TUN devices, raw and UDP sockets, the wall
clock and a control socket (DESIGN.md, "Two runtimes")."""
