"""A cheap password hasher for the soak run (``soak_settings``), nothing else.

Django's default PBKDF2 costs about 0.3 s per check on the soak machine, so a
few dozen password logins would eat the whole CPU budget of a 60 s run. Same
algorithm, 1,000 iterations instead of Django's 1,000,000: the code path of a
password login is unchanged, only its cost. Never use this outside the soak.
"""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class SoakPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    algorithm = "soak_pbkdf2_sha256"
    iterations = 1000
