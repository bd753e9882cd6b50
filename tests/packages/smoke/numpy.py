import numpy

inverse = numpy.linalg.inv(numpy.eye(3) * 2)
assert numpy.allclose(inverse, numpy.eye(3) / 2)
sample = numpy.random.default_rng(0).random(3)
assert sample.shape == (3,) and ((0 <= sample) & (sample < 1)).all()
spectrum = numpy.fft.fft(range(8))
assert numpy.isclose(spectrum[0], 28) and numpy.isclose(abs(spectrum[4]), 4)
