"""`lastline-matching` / `python -m lastline_matching`: serve, or migrate the schema."""

from lastline_matching.app import runtime
from lastline_shared.service_cli import service_cli

main = service_cli(runtime)

if __name__ == "__main__":
    main()
