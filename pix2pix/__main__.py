from pix2pix.cli import main

if __name__ == "__main__":
    main()
