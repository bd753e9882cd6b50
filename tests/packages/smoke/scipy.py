import numpy
from scipy import linalg, optimize, special

inverse = linalg.inv(numpy.array([[4.0, 7.0], [2.0, 6.0]]))
assert numpy.allclose(inverse, [[0.6, -0.7], [-0.2, 0.4]]), inverse
assert abs(special.gamma(5) - 24.0) < 1e-12
result = optimize.minimize(lambda x: (x[0] - 3) ** 2 + (x[1] + 1) ** 2, [0.0, 0.0])
assert result.success and numpy.allclose(result.x, [3, -1], atol=1e-5), result
