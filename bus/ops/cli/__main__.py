from bus.ops.cli import main

main()
