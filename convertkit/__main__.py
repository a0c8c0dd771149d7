from convertkit.cli import main

raise SystemExit(main())
