"""Training on several processes with torchrun and DistributedDataParallel (torchvision references style).

    torchrun --nproc_per_node=2 train.py ...

torchrun starts one process per device and tells each who it is in environment variables: RANK
(0 .. WORLD_SIZE-1 over all machines), LOCAL_RANK (its index on this machine) and WORLD_SIZE. Without
them (plain `python train.py`) there is one process and every function here does nothing.
"""
import builtins
import datetime
import os
import sys
import traceback

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from util.errors import UserError


def launched():
    return 'RANK' in os.environ and 'WORLD_SIZE' in os.environ


def setup(device, dist_url, timeout, batch_size):
    """Join the process group torchrun describes and return (rank, world_size, device); (0, 1, device)
    without torchrun.

    CUDA: nccl, one GPU per process (the device returned is cuda:LOCAL_RANK). CPU: gloo. timeout
    (--dist_timeout) bounds the wait for the group to form and every later collective, so a rank whose
    peer died or stalls fails with an error instead of waiting forever.
    """
    if not launched():
        return 0, 1, device
    rank, world_size = int(os.environ['RANK']), int(os.environ['WORLD_SIZE'])
    local_rank = int(os.environ.get('LOCAL_RANK', 0))
    device_id = None
    if device == 'mps':
        raise UserError('--device mps runs in one process: torch.distributed has no backend for Apple\'s GPU. '
                        'Start train.py with python instead of torchrun, or use --device cpu with torchrun.')
    if device.startswith('cuda'):
        if local_rank >= torch.cuda.device_count():
            raise UserError(f'process LOCAL_RANK={local_rank} has no GPU of its own: this machine has '
                             f'{torch.cuda.device_count()} CUDA device(s). Start at most that many processes per '
                             f'machine (torchrun --nproc_per_node).')
        device = f'cuda:{local_rank}'
        torch.cuda.set_device(local_rank)
        device_id = torch.device(device)
    backend = 'nccl' if device_id is not None else 'gloo'
    try:
        dist.init_process_group(backend, init_method=dist_url, rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=timeout), device_id=device_id)
    except (RuntimeError, ValueError) as e:  # torch's store, timeout and network errors are RuntimeErrors
        raise UserError(f'process {rank} of {world_size} could not form the process group '
                         f'({backend}, --dist_url {dist_url}) within --dist_timeout {timeout:g} s: '
                         f'{str(e).strip().splitlines()[0]}\nStart all {world_size} processes (the same torchrun '
                         f'command on every machine) and check that they reach each other.')
    print_on_main_only(rank == 0)
    explain_failed_exchanges(rank, world_size, timeout)
    print(f'training on {world_size} process(es) ({backend}), --batch_size {batch_size} each: '
          f'{batch_size * world_size} images per step')
    return rank, world_size, device


def print_on_main_only(is_main_process):
    """Silence print() to stdout on every rank but 0, so the console shows each line once. Errors and
    warnings, printed to stderr, still show on every rank."""
    if not is_main_process:
        print_anywhere = builtins.print

        def print_errors_only(*args, file=None, **kwargs):
            if file is not None and file is not sys.stdout:
                print_anywhere(*args, file=file, **kwargs)
        builtins.print = print_errors_only


def explain_failed_exchanges(rank, world_size, timeout):
    """After the traceback of an error from an exchange with the other processes (DDP's gradient exchange
    in backward(), its buffer broadcast in forward(), a barrier), say what it means. gloo words it in many
    ways ('Timed out waiting', 'Connection closed by peer', 'Application timeout caused pair closure'),
    often as a plain RuntimeError, and none names the likely cause: another process died or stalled, and
    its own log has the reason."""
    torch_exchange_code = tuple(os.path.dirname(m.__file__) + os.sep for m in (dist, torch.nn.parallel))
    print_traceback = sys.excepthook  # torch's, which marks each line with the rank

    def excepthook(kind, error, tb):
        print_traceback(kind, error, tb)
        message = str(error).strip()
        raised_in_exchange = any(frame.filename.startswith(torch_exchange_code) for frame in traceback.extract_tb(tb))
        if raised_in_exchange or isinstance(error, dist.DistError) or '/gloo/' in message or 'NCCL' in message:
            print(f'error: process {rank} of {world_size} stopped: an exchange with the other processes failed '
                  f'({message.splitlines()[0] if message else kind.__name__}). Another process died or stalled '
                  f'(a process waits at most --dist_timeout {timeout:g} s); its log has the cause. torchrun '
                  f'names the process that failed first.', file=sys.stderr, flush=True)
    sys.excepthook = excepthook


def is_main():
    """True in the process that writes checkpoints, logs and pages: rank 0, or the only process."""
    return not dist.is_initialized() or dist.get_rank() == 0


def rank():
    return dist.get_rank() if dist.is_initialized() else 0


def world_size():
    return dist.get_world_size() if dist.is_initialized() else 1


def wrap(net):
    """net inside DistributedDataParallel, which averages gradients over ranks in backward() and starts
    every rank from rank 0's weights; net itself in a single process.

    pix2pix runs D in both of its steps. D's step gives every D weight a gradient, which DDP averages. G's
    step runs D with requires_grad off on D's weights, so no D gradient is made there and DDP has nothing
    to exchange or wait for; find_unused_parameters (a graph walk every forward) is not needed.
    tests/test_distributed.py checks both networks against one process taking the same steps."""
    if not dist.is_initialized():
        return net
    device = next(net.parameters()).device
    return DistributedDataParallel(net, device_ids=[device.index] if device.type == 'cuda' else None)


def broadcast(value):
    """Rank 0's value (any picklable object) on every rank."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value):
    """[value of rank 0, value of rank 1, ...] on every rank ([value] in a single process)."""
    if not dist.is_initialized():
        return [value]
    values = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def mean_over_ranks(values):
    """{name: tensor} averaged over all ranks, in one collective. Every rank must call it at the same point."""
    if not dist.is_initialized() or not values:
        return values
    stacked = torch.stack([v.detach().float().reshape(()) for v in values.values()])
    dist.all_reduce(stacked)  # a sum: the AVG op exists on nccl only
    return dict(zip(values, stacked / dist.get_world_size()))


def barrier():
    if dist.is_initialized():
        dist.barrier()


def cleanup():
    """Leave the process group (at the end of a successful run; a failing rank just exits). The barrier first:
    a rank that tears down its gloo connections while a peer still works through the last exchange makes
    that peer abort ('terminate called without an active exception', seen in about 1 run in 10)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
