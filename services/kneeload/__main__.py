from kneeload.cli import main

main()
