from dmvpn.cli.main import main

main()
