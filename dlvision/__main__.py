from dlvision.cli import main

main()
