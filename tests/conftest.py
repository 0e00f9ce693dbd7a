import sys
from pathlib import Path

# fixture_support lives beside the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))
