# Made once with PyTorch 2.15.0 (PyPI's default wheel, 2.15.0+cu132, run on
# CPU; Python 3.11.7) to produce the reference files in this folder:
#   cd crates/cnnspot-weights/tests/data && python make_refs.py
# tests/pth_write.rs checks that cnnspot writes these files byte for byte.
import collections, json, torch
torch.manual_seed(0)

# 1. A CNNDetection-style training checkpoint with a real Adam state.
net = torch.nn.Sequential(collections.OrderedDict([
    ('conv1', torch.nn.Conv2d(3, 2, 1)), ('bn1', torch.nn.BatchNorm2d(2)),
    ('fc', torch.nn.Linear(2, 1))]))
opt = torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.9, 0.999))
for _ in range(3):
    opt.zero_grad()
    x = torch.randn(2, 3, 4, 4)
    net[2](net[1](net[0](x)).mean((2, 3))).sum().backward()
    opt.step()
# state_dict() carries a `_metadata` attribute (pickled via BUILD) that
# cnnspot does not write; a plain OrderedDict copy drops it.
sd = collections.OrderedDict(net.state_dict())
torch.save({'model': sd, 'optimizer': opt.state_dict(), 'total_steps': 3,
            'epoch': 1, 'lr': 1e-4}, 'adam_ref.pth')
exp = {'model': {k: v.flatten().tolist() for k, v in sd.items()},
       'state': {str(i): {k: v.flatten().tolist() for k, v in s.items()}
                 for i, s in opt.state_dict()['state'].items()}}
json.dump(exp, open('adam_ref.json', 'w'))

# 2. Every dtype, views, empty tensors, and the pickle opcodes' edge cases.
base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
sd2 = collections.OrderedDict()
sd2['base'] = base
sd2['base_t'] = base.t()                     # strides (1, 4), same storage
sd2['row2'] = base[2]                        # offset 8, same storage
sd2['alone_view'] = torch.arange(10, dtype=torch.float64)[3:7]  # partial storage
for dt in [torch.float16, torch.bfloat16, torch.float64, torch.int64,
           torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool]:
    sd2[str(dt)] = (torch.arange(6) % 5 - 1).to(dt).reshape(2, 3)
sd2['scalar'] = torch.tensor(2.5)
sd2['empty'] = torch.zeros(0)
sd2['empty2d'] = torch.zeros(0, 3, dtype=torch.float64)
strs = [f's{i}' for i in range(1001)]
obj = {
    'strs': strs,                            # memo indices past 255
    'sd': sd2,
    'ints': [0, 255, 256, 65535, 65536, -1, 2**31 - 1, -2**31, 2**31,
             -2**31 - 1, 2**40, -2**40, 2**63 - 1, -2**63, -128, -129, 2**39, -2**39],
    'floats': [0.0, -0.0, 1.5, float('inf'), -1e-300, 1e-4],
    'big_list': list(range(2001)),           # APPENDS batches of 1000, then APPEND
    'big_dict': {i: -i for i in range(1001)},  # two MARK...SETITEMS batches
    'dict1000': {i: 0 for i in range(1000)},   # a trailing empty batch
    'list1000': [0] * 1000,
    'one': ([7], {8: 9}, collections.OrderedDict(x=1)),  # APPEND, SETITEM
    # the same string objects as 'strs': BINGETs; a lone last SETITEM
    'od1001': collections.OrderedDict((s, 0) for s in strs),
    'nested': (1, (2, 3), [None, True, False], {'a': ()}, (4, 5, 6, 7)),
    'empty': ([], {}, ()),
    'unicode': 'ünïcødé ✓',
}
torch.save(obj, 'zoo_ref.pth')

for f in ['adam_ref.pth', 'zoo_ref.pth']:
    torch.load(f, weights_only=True)
print('ok')
