"""The pure policy core: facts and the time in, a cited Decision out. No I/O, no clock, no globals."""
