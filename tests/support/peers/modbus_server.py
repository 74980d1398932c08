#!/usr/bin/env python3
"""An independent Modbus peer for cemsd's tests: pymodbus serving fixed values.

Each --unit ID=V1,V2,... gives device ID holding registers 0.. holding the values as
big-endian f32 (word order ABCD), two registers per value. pymodbus 3.16 answers other unit
ids with exception 4 (ignore_missing_devices does not silence them), so tests make a unit
dead on the line between cemsd and this server, not here.

    modbus_server.py --serial /dev/pts/7 --unit 1=1.5,20.9 --unit 3=3.5,19.0
    modbus_server.py --tcp 15020 [--rtu-framing] --unit 1=1.5,20.9

Prints "ready" on stdout once it serves; stops on SIGTERM.
"""

import argparse
import asyncio
import struct
import sys

from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice


def registers(values):
    words = []
    for value in values:
        high, low = struct.unpack(">HH", struct.pack(">f", value))
        words += [high, low]
    return words


def devices(units):
    out = []
    for spec in units:
        unit, _, values = spec.partition("=")
        words = registers(float(v) for v in values.split(","))
        out.append(
            SimDevice(
                id=int(unit),
                simdata=[SimData(address=0, values=words, datatype=DataType.REGISTERS)],
            )
        )
    return out


async def main():
    parser = argparse.ArgumentParser()
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--serial", help="serial port or pty path")
    where.add_argument("--tcp", type=int, help="port on 127.0.0.1")
    parser.add_argument("--rtu-framing", action="store_true", help="RTU frames over TCP")
    parser.add_argument("--baud", type=int, default=9600)
    parser.add_argument("--unit", action="append", required=True)
    args = parser.parse_args()

    served = devices(args.unit)
    if args.serial:
        server = ModbusSerialServer(
            served,
            framer=FramerType.RTU,
            port=args.serial,
            baudrate=args.baud,
        )
    else:
        server = ModbusTcpServer(
            served,
            framer=FramerType.RTU if args.rtu_framing else FramerType.SOCKET,
            address=("127.0.0.1", args.tcp),
        )
    if not await server.listen():
        sys.exit(f"cannot serve on {args.serial or args.tcp}")
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
